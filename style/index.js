import './base.css';
import './fleet.css';
import './host-gpus.css';
import './plan-preview.css';
