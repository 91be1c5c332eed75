/** The websocket stream (python_ext/kerasgpu/server/stream.py): its messages. */
import { IBackendStatus, IDeviceInfo, IGpuSample } from './gpu';

/** Where the stream is, under the API prefix. */
export const STREAM_PATH = 'stream';

/** Messages of the websocket /kerasgpu/api/v1/stream. */
export type StreamMessage =
  | {
      type: 'hello';
      interval_ms: number;
      history_seconds: number;
      status: IBackendStatus;
      devices: IDeviceInfo[];
      samples: IGpuSample[];
    }
  | { type: 'status'; status: IBackendStatus; devices: IDeviceInfo[] }
  | { type: 'samples'; samples: IGpuSample[] };
