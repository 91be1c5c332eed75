import './base.css';
import './fleet.css';
