import { describe, expect, it } from 'vitest';
import { splitAtCommand } from '../../src/cli/args.js';
import { RUN_OPTIONS } from '../../src/cli/run.js';

describe('splitAtCommand (run)', () => {
  it.each([
    ['options end at the first word that is not an option', ['ls', '-la', '/sandbox'], [], ['ls', '-la', '/sandbox']],
    ['-- still ends them', ['--', 'ls', '-la'], [], ['ls', '-la']],
    ['a value-taking long option consumes the next word', ['--sandbox-dir', 'work', 'ls', '-l'], ['--sandbox-dir', 'work'], ['ls', '-l']],
    ['--opt=value consumes nothing more', ['--name=x', 'env', '--help'], ['--name=x'], ['env', '--help']],
    ['a boolean long option consumes nothing', ['--no-network', 'curl', '-v', 'x'], ['--no-network'], ['curl', '-v', 'x']],
    ['a short option with a value', ['-p', 'strict', 'id', '-u'], ['-p', 'strict'], ['id', '-u']],
    ['a short cluster: boolean then value option taking the next word', ['-te', 'A=1', 'sh'], ['-te', 'A=1'], ['sh']],
    ['a short value option with its value attached', ['-eA=1', 'sh', '-c', 'x'], ['-eA=1'], ['sh', '-c', 'x']],
    ['the command\'s own -- is left to it', ['--tty', 'prog', '--', 'x'], ['--tty'], ['prog', '--', 'x']],
    ['repeatable options before the command', ['--ro', '/a', '--ro', '/b:/c', 'cat', '/c'], ['--ro', '/a', '--ro', '/b:/c'], ['cat', '/c']],
    ['no command', ['--tty'], ['--tty'], []],
    ['an unknown option stays clawjail\'s (and is refused by the parser)', ['--frob', 'ls'], ['--frob'], ['ls']],
  ])('%s', (_label, argv, own, command) => {
    expect(splitAtCommand(argv, RUN_OPTIONS)).toEqual({ own, command });
  });
});
