// The generate page's img2img and inpainting inputs: an init image (upload),
// the strength slider, and a mask, uploaded or painted white over the init
// image on a canvas of its size; with padding_mask_crop. They become the
// generate fields init_image, strength, mask_image and padding_mask_crop
// (StableDiffusionControlNetImg2Img/InpaintPipeline's names), sent only when
// an init image is given (and the mask ones only with a mask), so a text-to-
// image request stays what it was. The painted mask is sent as a PNG of pure
// black and white (the strokes' anti-aliased edges thresholded at half), the
// size of the init image. Not here: the pipelines (the server's).
import { h } from './ui.js';

const STRENGTH_DEFAULT = 0.8; // diffusers' default strength

// A data URL's base64 part.
const b64 = (dataUrl) => String(dataUrl).replace(/^data:[^,]*,/, '');
const readFile = (file) => new Promise((resolve, reject) => {
  const r = new FileReader();
  r.onload = () => resolve(b64(r.result));
  r.onerror = () => reject(r.error);
  r.readAsDataURL(file);
});
const canvasPng = (canvas) => new Promise((resolve) => canvas.toBlob((blob) => {
  const r = new FileReader();
  r.onload = () => resolve(b64(r.result));
  r.readAsDataURL(blob);
}, 'image/png'));

// The painted mask at full opacity, every pixel 0 or 255 (white where any
// channel of the stroke is at least half).
function binaryMask(paint) {
  const out = document.createElement('canvas');
  out.width = paint.width;
  out.height = paint.height;
  const ctx = out.getContext('2d');
  const img = paint.getContext('2d').getImageData(0, 0, paint.width, paint.height);
  for (let i = 0; i < img.data.length; i += 4) {
    const v = img.data[i + 3] >= 128 && img.data[i] >= 128 ? 255 : 0;
    img.data[i] = img.data[i + 1] = img.data[i + 2] = v;
    img.data[i + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
  return out;
}

// img2imgPanel() → { box, fields() }: fields() resolves to the members to add.
export function img2imgPanel() {
  const initFile = h('input', { id: 'g-init', type: 'file', accept: 'image/png,image/jpeg' });
  const maskFile = h('input', { id: 'g-mask-file', type: 'file', accept: 'image/png,image/jpeg' });
  const strength = h('input', { id: 'g-strength', name: 'strength', type: 'range', min: 0, max: 1, step: 0.01, value: STRENGTH_DEFAULT });
  const strengthOut = h('output', { for: 'g-strength' }, String(STRENGTH_DEFAULT));
  strength.addEventListener('input', () => { strengthOut.value = strength.value; });
  const crop = h('input', { id: 'g-padding_mask_crop', name: 'padding_mask_crop', type: 'number', min: 0, placeholder: 'none' });
  const under = h('canvas', { class: 'under', width: 8, height: 8 });
  const paint = h('canvas', { id: 'g-mask', class: 'paint', width: 8, height: 8, 'aria-label': 'mask: paint the area to regenerate' });
  const stack = h('div', { class: 'mask-stack', hidden: true }, under, paint);
  const clearMask = h('button', { type: 'button', class: 'quiet', hidden: true }, 'Clear mask');
  const brush = h('input', { id: 'g-brush', type: 'range', min: 1, max: 64, value: 16, 'aria-label': 'brush size' });
  let init = null, maskUpload = null, painted = false;
  const pctx = paint.getContext('2d');
  const clear = () => { pctx.clearRect(0, 0, paint.width, paint.height); painted = false; };
  clearMask.addEventListener('click', clear);
  initFile.addEventListener('change', async () => {
    const f = initFile.files[0];
    if (!f) return;
    const bmp = await createImageBitmap(f);
    init = await readFile(f);
    for (const c of [under, paint]) { c.width = bmp.width; c.height = bmp.height; }
    under.getContext('2d').drawImage(bmp, 0, 0);
    clear();
    stack.hidden = false;
    clearMask.hidden = false;
  });
  maskFile.addEventListener('change', async () => {
    maskUpload = maskFile.files[0] ? await readFile(maskFile.files[0]) : null;
  });
  let drawing = false;
  const at = (e) => {
    const r = paint.getBoundingClientRect();
    return [(e.clientX - r.left) * (paint.width / r.width), (e.clientY - r.top) * (paint.height / r.height)];
  };
  paint.addEventListener('pointerdown', (e) => {
    drawing = true;
    paint.setPointerCapture(e.pointerId);
    pctx.beginPath();
    pctx.moveTo(...at(e));
  });
  paint.addEventListener('pointermove', (e) => {
    if (!drawing) return;
    pctx.strokeStyle = '#fff';
    pctx.lineWidth = Number(brush.value) * (paint.width / paint.getBoundingClientRect().width);
    pctx.lineCap = 'round';
    pctx.lineJoin = 'round';
    pctx.lineTo(...at(e));
    pctx.stroke();
    painted = true;
  });
  paint.addEventListener('pointerup', () => { drawing = false; });
  const fields = async () => {
    if (!init) return {};
    const out = { init_image: init, strength: Number(strength.value) };
    const mask = maskUpload || (painted ? await canvasPng(binaryMask(paint)) : null);
    if (mask) {
      out.mask_image = mask;
      if (crop.value !== '') out.padding_mask_crop = Number(crop.value);
    }
    return out;
  };
  const box = h('fieldset', { class: 'img2img' }, h('legend', {}, 'Image to image / inpainting'),
    h('div', { class: 'field' }, h('label', { for: 'g-init' }, 'Init image (optional)'), initFile),
    h('div', { class: 'field' }, h('label', { for: 'g-strength' }, 'Strength'), strength, strengthOut),
    h('div', { class: 'field' }, h('label', { for: 'g-mask-file' }, 'Mask (upload, white = regenerate) or paint it below'), maskFile),
    h('div', { class: 'field' }, h('label', { for: 'g-brush' }, 'Brush'), brush),
    stack, clearMask,
    h('div', { class: 'field' }, h('label', { for: 'g-padding_mask_crop' }, 'Padding mask crop (px)'), crop));
  return { box, fields, binaryMask: () => binaryMask(paint) };
}
