// An independent Parquet writer for cnet's tests: apache-arrow builds the
// tables (struct image columns {bytes, path} as the Hub's datasets library
// stores them, a list-of-strings column, every physical type the reader
// supports, nulls), parquet-wasm (the Rust arrow/parquet crate compiled to
// wasm) writes them. What it writes, and the truth it writes next to it:
//
//   node write.mjs matrix DIR   DIR/<codec>_dict<0|1>_v<1|2>.parquet for every
//                               codec x dictionary x writer version (v2 = data
//                               pages v2), small pages and row groups so each
//                               column has several of both; DIR/truth.json
//                               holds every row's values (bytes as hex).
//   node write.mjs dataset DIR  a Hub snapshot: DIR/data/train-0000{0,1}-of-00002
//                               .parquet (image, conditioning_image, text), a
//                               test split to be ignored, DIR/images/ for rows
//                               whose bytes are null (path only); DIR/truth.json.
//   node write.mjs fill50k DIR  fusing/fill50k's layout at its size: DIR/repo/data/
//                               train-00000-of-00001.parquet of 512x512 circles
//                               (image, conditioning_image {bytes, path}, text)
//                               and DIR/conditioning_image_{1,2}.png, the
//                               guide's two validation images.
//
// PNGs are encoded here (zlib deflate, CRC-32 by its definition) so the test
// can decode them with cnet's PNG reader. Not here: reading Parquet.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import * as arrow from 'apache-arrow';
import * as parquet from 'parquet-wasm/esm';

// The package's node build is CommonJS under "type": "module" (unloadable);
// its ES module build is initialised from the wasm bytes instead.
parquet.initSync({
  module: fs.readFileSync(new URL('node_modules/parquet-wasm/esm/parquet_wasm_bg.wasm', import.meta.url)),
});

function crc32(buf) {
  let c = ~0;
  for (const b of buf) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}

function chunk(type, data) {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'latin1');
  data.copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

// A w x h RGB PNG whose pixel (x, y) is (seed * 37 + x * 11, seed * 53 + y * 7, seed * 91).
function png(seed, w, h) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  const raw = Buffer.alloc(h * (1 + 3 * w));
  for (let y = 0; y < h; y++) {
    const row = y * (1 + 3 * w);
    for (let x = 0; x < w; x++) {
      raw[row + 1 + 3 * x] = (seed * 37 + x * 11) & 255;
      raw[row + 2 + 3 * x] = (seed * 53 + y * 7) & 255;
      raw[row + 3 + 3 * x] = (seed * 91) & 255;
    }
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', zlib.deflateSync(raw)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

const imageType = () =>
  new arrow.Struct([
    new arrow.Field('bytes', new arrow.Binary(), true),
    new arrow.Field('path', new arrow.Utf8(), true),
  ]);

function write(file, columns, props) {
  const table = new arrow.Table(columns);
  const wasmTable = parquet.Table.fromIPCStream(arrow.tableToIPC(table, 'stream'));
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, parquet.writeParquet(wasmTable, props));
}

const hex = (b) => (b ? Buffer.from(b).toString('hex') : null);

function matrix(dir) {
  const n = 23;
  const rows = [];
  for (let i = 0; i < n; i++) {
    const img = i % 7 === 3 ? null : png(i, 3 + (i % 4), 2 + (i % 3));
    rows.push({
      image: { bytes: img, path: i % 5 === 1 ? null : `images/${i}.png` },
      conditioning_image: i % 11 === 6 ? null : { bytes: png(100 + i, 2, 2), path: `cond/${i}.png` },
      text: i % 6 === 5 ? null : `caption ${i} ` + 'é'.repeat(i % 4),
      i32: i % 4 === 2 ? null : (i * 7919) % 1000 - 500,
      i64: BigInt(i) * 1234567890123n - 9000000000000n,
      f32: i % 9 === 8 ? null : i * 0.5 - 3,
      f64: i * 1.25 + 0.001,
      flag: i % 3 === 0,
      tags: i % 8 === 7 ? null : Array.from({ length: i % 4 }, (_, k) => `tag ${i}.${k}`),
      // A repeated value, so the dictionary is used.
      kind: ['line', 'edge', 'depth'][i % 3],
    });
  }
  const columns = {
    image: arrow.vectorFromArray(rows.map((r) => r.image), imageType()),
    conditioning_image: arrow.vectorFromArray(rows.map((r) => r.conditioning_image), imageType()),
    text: arrow.vectorFromArray(rows.map((r) => r.text), new arrow.Utf8()),
    i32: arrow.vectorFromArray(rows.map((r) => r.i32), new arrow.Int32()),
    i64: arrow.vectorFromArray(rows.map((r) => r.i64), new arrow.Int64()),
    f32: arrow.vectorFromArray(rows.map((r) => r.f32), new arrow.Float32()),
    f64: arrow.vectorFromArray(rows.map((r) => r.f64), new arrow.Float64()),
    flag: arrow.vectorFromArray(rows.map((r) => r.flag), new arrow.Bool()),
    tags: arrow.vectorFromArray(
      rows.map((r) => r.tags),
      new arrow.List(new arrow.Field('item', new arrow.Utf8(), true)),
    ),
    kind: arrow.vectorFromArray(rows.map((r) => r.kind), new arrow.Utf8()),
  };
  const files = [];
  const codecs = { none: parquet.Compression.UNCOMPRESSED, snappy: parquet.Compression.SNAPPY,
                   gzip: parquet.Compression.GZIP, zstd: parquet.Compression.ZSTD };
  for (const [codec, c] of Object.entries(codecs))
    for (const dict of [0, 1])
      for (const version of [1, 2]) {
        const name = `${codec}_dict${dict}_v${version}.parquet`;
        const props = new parquet.WriterPropertiesBuilder()
          .setCompression(c)
          .setDictionaryEnabled(dict === 1)
          // PLAIN when not dictionary-coded (as pyarrow writes; arrow-rs would pick DELTA_* for v2)
          .setEncoding(parquet.Encoding.PLAIN)
          .setWriterVersion(version === 2 ? parquet.WriterVersion.V2 : parquet.WriterVersion.V1)
          .setDataPageSizeLimit(64)
          .setWriteBatchSize(3)
          .setMaxRowGroupSize(10)
          .build();
        write(path.join(dir, name), columns, props);
        files.push(name);
      }
  const truth = rows.map((r) => ({
    image_bytes: r.image ? hex(r.image.bytes) : null,
    image_path: r.image ? r.image.path : null,
    cond_bytes: r.conditioning_image ? hex(r.conditioning_image.bytes) : null,
    cond_path: r.conditioning_image ? r.conditioning_image.path : null,
    text: r.text,
    i32: r.i32,
    i64: r.i64.toString(),
    f32: r.f32,
    f64: r.f64,
    flag: r.flag,
    tags: r.tags,
    kind: r.kind,
  }));
  fs.writeFileSync(path.join(dir, 'truth.json'), JSON.stringify({ files, rows: truth }));
}

function dataset(dir) {
  const shards = [9, 8];
  const truth = [];
  let id = 0;
  shards.forEach((count, s) => {
    const rows = [];
    for (let k = 0; k < count; k++, id++) {
      const target = png(id, 4 + (id % 3), 4);
      const onDisk = id % 6 === 4; // bytes null, read from the snapshot by path
      if (onDisk) {
        fs.mkdirSync(path.join(dir, 'images'), { recursive: true });
        fs.writeFileSync(path.join(dir, 'images', `${id}.png`), target);
      }
      rows.push({
        image: { bytes: onDisk ? null : target, path: onDisk ? `images/${id}.png` : `${id}.png` },
        conditioning_image: { bytes: png(500 + id, 4 + (id % 3), 4), path: null },
        text: `a sample numbered ${id}`,
      });
      truth.push({ shard: s, target: hex(target), cond: hex(rows[k].conditioning_image.bytes),
                   text: rows[k].text });
    }
    const columns = {
      image: arrow.vectorFromArray(rows.map((r) => r.image), imageType()),
      conditioning_image: arrow.vectorFromArray(rows.map((r) => r.conditioning_image), imageType()),
      text: arrow.vectorFromArray(rows.map((r) => r.text), new arrow.Utf8()),
    };
    const props = new parquet.WriterPropertiesBuilder()
      .setCompression(s ? parquet.Compression.ZSTD : parquet.Compression.SNAPPY)
      .setMaxRowGroupSize(4)
      .build();
    write(path.join(dir, 'data', `train-0000${s}-of-00002.parquet`), columns, props);
  });
  // A test split, not to be read as training data.
  write(path.join(dir, 'data', 'test-00000-of-00001.parquet'), {
    image: arrow.vectorFromArray([{ bytes: png(999, 2, 2), path: null }], imageType()),
    conditioning_image: arrow.vectorFromArray([{ bytes: png(998, 2, 2), path: null }], imageType()),
    text: arrow.vectorFromArray(['held out'], new arrow.Utf8()),
  }, new parquet.WriterPropertiesBuilder().build());
  fs.writeFileSync(path.join(dir, 'truth.json'), JSON.stringify({ rows: truth }));
}

// A size x size RGB PNG: a disc of colour fill (or, when fill is null, a
// white ring) of radius size/4 at (cx, cy) on background bg.
function circle(size, cx, cy, fill, bg) {
  const raw = Buffer.alloc(size * (1 + 3 * size));
  const r = size / 4;
  for (let y = 0; y < size; y++)
    for (let x = 0; x < size; x++) {
      const d = Math.hypot(x - cx, y - cy);
      const rgb = fill ? (d <= r ? fill : bg) : Math.abs(d - r) <= 2 ? [255, 255, 255] : bg;
      raw.set(rgb, y * (1 + 3 * size) + 1 + 3 * x);
    }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(size, 0);
  ihdr.writeUInt32BE(size, 4);
  ihdr[8] = 8;
  ihdr[9] = 2;
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', zlib.deflateSync(raw)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

function fill50k(dir) {
  const size = 512;
  const colours = { red: [220, 20, 20], blue: [20, 40, 220], cyan: [0, 200, 200],
                    brown: [120, 70, 20], green: [30, 160, 60], yellow: [230, 210, 40] };
  const names = Object.keys(colours);
  const rows = [];
  for (let i = 0; i < 6; i++) {
    const fg = names[i % names.length], bg = names[(i + 2) % names.length];
    const cx = 128 + 40 * i, cy = 384 - 30 * i;
    rows.push({
      image: { bytes: circle(size, cx, cy, colours[fg], colours[bg]), path: null },
      conditioning_image: { bytes: circle(size, cx, cy, null, [0, 0, 0]), path: null },
      text: `${fg} circle with ${bg} background`,
    });
  }
  write(path.join(dir, 'repo', 'data', 'train-00000-of-00001.parquet'), {
    image: arrow.vectorFromArray(rows.map((r) => r.image), imageType()),
    conditioning_image: arrow.vectorFromArray(rows.map((r) => r.conditioning_image), imageType()),
    text: arrow.vectorFromArray(rows.map((r) => r.text), new arrow.Utf8()),
  }, new parquet.WriterPropertiesBuilder().setCompression(parquet.Compression.SNAPPY).build());
  fs.writeFileSync(path.join(dir, 'conditioning_image_1.png'), circle(size, 200, 300, null, [0, 0, 0]));
  fs.writeFileSync(path.join(dir, 'conditioning_image_2.png'), circle(size, 300, 200, null, [0, 0, 0]));
}

const [mode, dir] = process.argv.slice(2);
if (mode === 'matrix') matrix(dir);
else if (mode === 'dataset') dataset(dir);
else if (mode === 'fill50k') fill50k(dir);
else {
  console.error('usage: node write.mjs matrix|dataset|fill50k DIR');
  process.exit(2);
}
