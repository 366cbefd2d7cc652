// componentize-js 0.23 decodes every string it receives with `new TextDecoder()`, whose default
// (ignoreBOM: false) drops a leading U+FEFF: a config, field name, region or value that starts
// with a byte-order mark would reach the policy without it, and the policy would decide
// differently from the Rust one (or return a party id the host refuses). Decoding through a
// decoder that keeps the mark restores the exact strings the host sent. Import it first.
const keepBom = new TextDecoder('utf-8', { ignoreBOM: true });
const decode = TextDecoder.prototype.decode;
TextDecoder.prototype.decode = function (input, options) {
  return decode.call(keepBom, input, options);
};
