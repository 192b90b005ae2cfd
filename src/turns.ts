/**
 * A queue of turns for CPU-bound steps started together: each turn begins on a later event-loop
 * iteration than the previous one ended, so I/O that arrived meanwhile (a sandbox's "ready", a
 * client's request) is handled between two turns instead of after all of them.
 * `take()` resolves with a release function; releasing twice is harmless.
 */
export function createTurnQueue(): { take(): Promise<() => void> } {
  let tail: Promise<void> = Promise.resolve();
  return {
    take() {
      const previous = tail;
      let done = false;
      let open!: () => void;
      tail = new Promise<void>((resolve) => (open = resolve));
      const release = () => {
        if (done) return;
        done = true;
        setImmediate(open);
      };
      return previous.then(() => release);
    },
  };
}
