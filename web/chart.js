// A line chart of one training metric against the step, drawn as SVG from
// the job's progress events (loss, learning rate). Fixed view box, scaled by
// CSS; the y range is the data's own (a flat series gets a small margin).
// Accessible through its <figcaption> (latest value, range, point count).
// Not here: collecting the points (job.js).
import { fmtNumber, h, svg } from './ui.js';

const W = 480, H = 180, PAD_L = 56, PAD_R = 12, PAD_T = 12, PAD_B = 28;

// points: [[step, value], ...] in step order. Returns a <figure>.
export function lineChart(title, points) {
  const fig = h('figure', { class: 'chart', 'data-metric': title });
  const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
  let x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
  if (x0 === x1) x0 -= 1, x1 += 1;
  if (y0 === y1) { const m = Math.abs(y0) * 0.05 || 1; y0 -= m; y1 += m; }
  const px = (x) => PAD_L + ((x - x0) / (x1 - x0)) * (W - PAD_L - PAD_R);
  const py = (y) => H - PAD_B - ((y - y0) / (y1 - y0)) * (H - PAD_T - PAD_B);
  const d = points.map((p, i) => `${i ? 'L' : 'M'}${px(p[0]).toFixed(1)},${py(p[1]).toFixed(1)}`).join('');
  const last = points[points.length - 1];
  const label = `${title}: ${points.length} points, latest ${fmtNumber(last[1])} at step ${last[0]}, ` +
                `range ${fmtNumber(Math.min(...ys))} to ${fmtNumber(Math.max(...ys))}`;
  fig.append(svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': label },
    svg('line', { x1: PAD_L, y1: H - PAD_B, x2: W - PAD_R, y2: H - PAD_B, class: 'axis' }),
    svg('line', { x1: PAD_L, y1: PAD_T, x2: PAD_L, y2: H - PAD_B, class: 'axis' }),
    svg('text', { x: PAD_L - 4, y: PAD_T + 4, 'text-anchor': 'end', class: 'tick' }, fmtNumber(y1)),
    svg('text', { x: PAD_L - 4, y: H - PAD_B, 'text-anchor': 'end', class: 'tick' }, fmtNumber(y0)),
    svg('text', { x: PAD_L, y: H - 8, class: 'tick' }, `step ${Math.round(x0)}`),
    svg('text', { x: W - PAD_R, y: H - 8, 'text-anchor': 'end', class: 'tick' }, `step ${Math.round(x1)}`),
    svg('path', { d, class: 'line' }),
    points.length === 1 ? svg('circle', { cx: px(last[0]), cy: py(last[1]), r: 3, class: 'dot' }) : null));
  fig.append(h('figcaption', {}, label));
  return fig;
}
