import { describe, expect, it } from 'vitest';
import { addon } from '../../src/native.js';
import { InitChannel, MALFORMED_RECORD_STEP, type SetupFailure } from '../../src/services/channel.js';

// The supervisor's end of the channel treats anything clawjail-init would never send as a setup
// failure (the launch is then refused), instead of dropping it.
describe('InitChannel', () => {
  const pair = () => {
    const [ours, theirs] = addon().socketpair();
    const channel = new InitChannel(ours);
    const helper = new (addon().Channel)(theirs, () => {});
    return { channel, helper };
  };

  it.each([
    ['not JSON', Buffer.from('\x00\x01garbage'), 'malformed record from clawjail-init'],
    ['an unknown record type', Buffer.from(JSON.stringify({ t: 'surprise' })), 'unknown record from clawjail-init: "surprise"'],
  ])('%s is a failure (step channel.record, EPROTO)', async (_label, bytes, detail) => {
    const { channel, helper } = pair();
    try {
      const failure = new Promise<SetupFailure>((resolve) => channel.once('failure', resolve));
      helper.send(bytes);
      const f = await failure;
      expect(f).toMatchObject({ step: MALFORMED_RECORD_STEP, errno: 71 });
      expect(f.detail).toContain(detail);
    } finally {
      channel.close();
      helper.close();
    }
  });

  it('a well-formed record is still delivered', async () => {
    const { channel, helper } = pair();
    try {
      const ready = new Promise<number>((resolve) => channel.once('ready', resolve));
      helper.send(Buffer.from(JSON.stringify({ t: 'ready', pid: 7 })));
      expect(await ready).toBe(7);
    } finally {
      channel.close();
      helper.close();
    }
  });
});
