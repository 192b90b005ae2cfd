import { describe, expect, it } from 'vitest';
import { addon } from '../../src/native.js';

// Callers branch on `code`: an addon call that fails in a syscall carries the errno's name.
describe('addon errors', () => {
  it('a failed syscall in the addon is an error with errno and its name as code (EBADF)', () => {
    let caught: NodeJS.ErrnoException | undefined;
    try {
      addon().relay(1_000_000, 1_000_001, () => {});
    } catch (e) {
      caught = e as NodeJS.ErrnoException;
    }
    expect(caught).toBeInstanceOf(Error);
    expect(caught).toMatchObject({ errno: 9, code: 'EBADF' });
  });
});
