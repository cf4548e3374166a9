// The metadata_props of an ONNX file, read straight from its protobuf bytes.
//
// ONNX Runtime's JavaScript API (onnxruntime-node and onnxruntime-web) exposes the
// input and output metadata of a session but not the model's custom metadata
// (microsoft/onnxruntime#16547), so the model card is read here: ModelProto field 14
// is `repeated StringStringEntryProto metadata_props`, each entry {1: key, 2: value}.
// Only the top level of the message is walked; the graph (field 7) is skipped by its
// length without being decoded. Plain JavaScript with no imports: runs in Node.js and
// in the browser.

const METADATA_PROPS = 14;

function readVarint(bytes, pos) {
  let value = 0;
  let scale = 1;
  for (let n = 0; n < 10; n++) {
    if (pos >= bytes.length) break;
    const byte = bytes[pos++];
    value += (byte & 0x7f) * scale; // arithmetic, not bit ops: lengths may pass 2^31
    if (byte < 0x80) return [value, pos];
    scale *= 128;
  }
  throw new Error("not an ONNX file: truncated or malformed protobuf varint");
}

/** Walk one message's fields, calling visit(field, bytes) for length-delimited ones. */
function forEachField(bytes, visit) {
  let pos = 0;
  while (pos < bytes.length) {
    let tag;
    [tag, pos] = readVarint(bytes, pos);
    const field = Math.floor(tag / 8);
    const wire = tag % 8;
    if (wire === 0) {
      [, pos] = readVarint(bytes, pos);
    } else if (wire === 1) {
      pos += 8;
    } else if (wire === 5) {
      pos += 4;
    } else if (wire === 2) {
      let len;
      [len, pos] = readVarint(bytes, pos);
      if (pos + len > bytes.length) throw new Error("not an ONNX file: a field runs past the end of the data");
      visit(field, bytes.subarray(pos, pos + len));
      pos += len;
    } else {
      throw new Error(`not an ONNX file: unsupported protobuf wire type ${wire}`);
    }
  }
}

/** metadata_props of an ONNX model as a plain {key: value} object. */
export function readMetadataProps(modelBytes) {
  const bytes = modelBytes instanceof Uint8Array ? modelBytes : new Uint8Array(modelBytes);
  const utf8 = new TextDecoder("utf-8", { fatal: true });
  const props = {};
  forEachField(bytes, (field, entry) => {
    if (field !== METADATA_PROPS) return;
    let key = "";
    let value = "";
    forEachField(entry, (f, b) => {
      if (f === 1) key = utf8.decode(b);
      else if (f === 2) value = utf8.decode(b);
    });
    props[key] = value;
  });
  return props;
}

/**
 * The dcgan-rt contract of a model: {card, io} parsed from "dcgan_rt.model_card" and
 * "dcgan_rt.io", with the checks an app should make before trusting them.
 */
export function readContract(modelBytes) {
  const props = readMetadataProps(modelBytes);
  if (!("dcgan_rt.model_card" in props)) {
    throw new Error("not a dcgan-rt generator: no 'dcgan_rt.model_card' in the ONNX metadata (export it with dcgan-rt export)");
  }
  const card = JSON.parse(props["dcgan_rt.model_card"]);
  const io = JSON.parse(props["dcgan_rt.io"] ?? "null");
  if (card.format !== "dcgan-rt/generator" || ![1, 2].includes(card.schema_version)) {
    throw new Error(`unsupported model card (format ${card.format}, schema_version ${card.schema_version}); this app reads schema_version 1 and 2`);
  }
  if (!io || !io.input || !io.output) throw new Error("the model has no 'dcgan_rt.io' contract: re-export it with dcgan-rt export");
  return { card, io, props };
}
