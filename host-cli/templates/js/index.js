// {{name}}: a conflict-resolution policy for TMF632 parties. It starts as the default merge
// (per-field last writer by hybrid logical clock, arrays element-wise, `status` by lifecycle,
// deletes as tombstones); change `resolve` to add your rules, as policies/js/na-status does.
//
// `default-merge.js` is the default merge in JavaScript (a copy of the repository's, which
// keeps it in step with the Rust one). The values' types, as componentize-js passes them, are
// generated from the contract (wit/policy.wit) into `types/` (TypeScript declarations).

import './bom-fix.js';
import * as merge from './default-merge.js';

export const resolver = {
  describe() {
    return { name: '{{name}}', version: '0.1.0', contractVersion: merge.CONTRACT_VERSION };
  },

  resolve(ctx, local, remote) {
    return merge.resolve(ctx, local, remote);
  },
};
