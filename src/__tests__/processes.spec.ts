import { formatElapsed, groupProcesses } from '../views/panel';
import { IProcessRow } from '../api/gpu';

const row = (pid: number, gpu: number, mib: number): IProcessRow => ({
  pid,
  gpu_uuid: `GPU-${gpu}`,
  gpu_index: gpu,
  used_memory_mib: mib,
  name: 'python3',
  kernel: null,
  sessions: [],
  can_shutdown: false
});

describe('the process list', () => {
  it('shows one row per process, its GPUs listed and memory summed (not a row per GPU)', () => {
    // 4 processes on 8 GPUs: NVML lists 32 entries, the panel 4 rows.
    const rows: IProcessRow[] = [];
    for (let pid = 1; pid <= 4; pid++) {
      for (let gpu = 7; gpu >= 0; gpu--) {
        rows.push(row(100 + pid, gpu, 1000 * pid));
      }
    }
    const groups = groupProcesses(rows);
    expect(groups).toHaveLength(4);
    expect(groups.map(g => g.pid)).toEqual([104, 103, 102, 101]); // largest first
    expect(groups[0].gpus).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(groups[0].used_memory_mib).toBe(32000);
  });

  it('says how long a process has run in words', () => {
    const now = 1_000_000_000;
    expect(formatElapsed(now / 1000 - 42, now)).toBe('for 42 s');
    expect(formatElapsed(now / 1000 - 180, now)).toBe('for 3 min');
    expect(formatElapsed(now / 1000 - 7500, now)).toBe('for 2 h 5 min');
    expect(formatElapsed(now / 1000 - 5 * 86400, now)).toBe('for 5 days');
  });
});
