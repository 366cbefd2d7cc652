// Hostile: resolve() never returns. A host must stop it (deadline, epochs or fuel).
export const resolver = {
  describe() {
    return { name: 'hostile-loop-js', version: '1.0.0', contractVersion: '1.0.0' };
  },

  resolve(ctx, local, remote) {
    let n = 0;
    for (;;) n++;
  },
};
