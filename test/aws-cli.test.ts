import { readFileSync } from 'node:fs';
import { devNull } from 'node:os';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AWS_CLI, killAllStarted, runProcess, startShoalDev } from './clients/processes.ts';
import type { ProcessResult, ShoalDev } from './clients/processes.ts';

/**
 * Debian's `aws` CLI v2, unchanged, against a real `shoal dev` process: first the README's "Try it"
 * commands exactly as written there, then the CLI's own pagination, waiters and error reporting.
 */

const README = resolve(import.meta.dirname, '..', 'README.md');
/** The endpoint the README's commands name; the test substitutes the one it started. */
const DOCUMENTED_ENDPOINT = 'http://127.0.0.1:8000';
/** One CLI run: a Python start (about 1.5 s of CPU) and one request, with room for a loaded machine. */
const CLI_TIMEOUT_MS = 60_000;
/**
 * AWS CLI v2 return code for "the service returned an error" (v1 used 255 for every failure):
 * https://docs.aws.amazon.com/cli/latest/userguide/cli-usage-returncodes.html
 */
const SERVICE_ERROR_EXIT = 254;

/** Nothing from the machine's AWS configuration, no pager, no instance metadata look-ups, no retries. */
function cliEnvironment(variables: Record<string, string>): NodeJS.ProcessEnv {
  return {
    // The README says plain `aws`: this PATH makes that Debian's /usr/bin/aws.
    PATH: '/usr/bin:/bin',
    HOME: process.env.HOME,
    AWS_CONFIG_FILE: devNull,
    AWS_SHARED_CREDENTIALS_FILE: devNull,
    AWS_PAGER: '',
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_MAX_ATTEMPTS: '1',
    AWS_RETRY_MODE: 'standard',
    ...variables,
  };
}

interface ReadmeSession {
  /** Variables the block exports. */
  variables: Record<string, string>;
  /** Its `aws` commands, continuation lines joined, in order. */
  commands: string[];
}

/** The shell block of the README's "Try it" section that runs `aws` commands. */
function tryItSession(markdown: string): ReadmeSession {
  const section = /^## Try it\n([\s\S]*?)^## /m.exec(markdown)?.[1];
  if (section === undefined) throw new Error('README.md has no "## Try it" section');
  const cliBlocks = [...section.matchAll(/^```sh\n([\s\S]*?)^```$/gm)]
    .map((match) => match[1])
    .filter((block) => /^aws /m.test(block));
  if (cliBlocks.length !== 1) throw new Error(`expected one sh block of aws commands in "Try it", found ${cliBlocks.length}`);
  const variables: Record<string, string> = {};
  const commands: string[] = [];
  for (const line of cliBlocks[0].replace(/\\\n\s*/g, ' ').split('\n')) {
    const command = line.trim();
    if (command === '') continue;
    if (command.startsWith('export ')) {
      for (const assignment of command.slice('export '.length).trim().split(/\s+/)) {
        const match = /^([A-Z_][A-Z0-9_]*)=([^\s'"$`\\]*)$/.exec(assignment);
        if (match === null) throw new Error(`README export this test cannot read: ${assignment}`);
        variables[match[1]] = match[2];
      }
    } else if (command.startsWith('aws ')) {
      commands.push(command);
    } else {
      throw new Error(`README "Try it" line that is neither an export nor an aws command: ${command}`);
    }
  }
  return { variables, commands };
}

/** The single-quoted or bare value of `--name` in a README command. */
function optionOf(command: string, name: string): string | undefined {
  const match = new RegExp(`--${name} (?:'([^']*)'|([^\\s']+))`).exec(command);
  return match === null ? undefined : (match[1] ?? match[2]);
}

function parseOutput(result: ProcessResult): unknown {
  return result.stdout.trim() === '' ? {} : JSON.parse(result.stdout);
}

function expectSuccess(result: ProcessResult, what: string): void {
  expect(result, `${what}\n${result.stderr}`).toMatchObject({ code: 0, signal: null });
}

afterAll(() => {
  killAllStarted();
});

describe("the README's Try it commands", () => {
  let shoal: ShoalDev;

  beforeAll(async () => {
    shoal = await startShoalDev();
  });

  afterAll(async () => {
    expect(await shoal.stop()).toBe(0);
  });

  it('run in order against shoal dev and give back what was put', { timeout: 240_000 }, async () => {
    const { variables, commands } = tryItSession(readFileSync(README, 'utf8'));
    const subcommands = commands.map((command) => command.split(/\s+/)[2]);
    expect(subcommands).toEqual(expect.arrayContaining(['create-table', 'put-item', 'get-item']));
    const env = cliEnvironment(variables);
    const puts: { table: string; item: Record<string, unknown> }[] = [];
    for (const [index, command] of commands.entries()) {
      expect(command.split(/\s+/), 'every README aws command names the local endpoint').toContain(DOCUMENTED_ENDPOINT);
      const result = await runProcess('/bin/bash', ['-c', command.replaceAll(DOCUMENTED_ENDPOINT, shoal.endpoint)], {
        env,
        timeoutMs: CLI_TIMEOUT_MS,
      });
      expectSuccess(result, command);
      const output = parseOutput(result);
      const table = optionOf(command, 'table-name');
      const subcommand = subcommands[index];
      if (subcommand === 'create-table') {
        // The README puts an item right away, with no wait: the table must be ACTIVE at once.
        expect(output).toMatchObject({ TableDescription: { TableName: table, TableStatus: 'ACTIVE' } });
      } else if (subcommand === 'put-item') {
        expect(output).toEqual({});
        puts.push({ table: table!, item: JSON.parse(optionOf(command, 'item')!) });
      } else if (subcommand === 'get-item') {
        const key = JSON.parse(optionOf(command, 'key')!) as Record<string, unknown>;
        const put = puts.findLast(
          (candidate) =>
            candidate.table === table &&
            Object.entries(key).every(([name, value]) => JSON.stringify(candidate.item[name]) === JSON.stringify(value)),
        );
        expect(put, `a put-item before ${command}`).toBeDefined();
        expect(output).toEqual({ Item: put!.item });
      }
    }
  });
});

describe('the aws CLI, signing every request', () => {
  const credentials = { accessKeyId: 'AKIDSHOALCLITEST', secretAccessKey: 'cli-test-secret' };
  let shoal: ShoalDev;

  beforeAll(async () => {
    shoal = await startShoalDev(credentials);
  });

  afterAll(async () => {
    expect(await shoal.stop()).toBe(0);
  });

  function aws(args: readonly string[], secretAccessKey = credentials.secretAccessKey): Promise<ProcessResult> {
    return runProcess(AWS_CLI, ['dynamodb', ...args, '--endpoint-url', shoal.endpoint, '--output', 'json'], {
      env: cliEnvironment({
        AWS_ACCESS_KEY_ID: credentials.accessKeyId,
        AWS_SECRET_ACCESS_KEY: secretAccessKey,
        AWS_DEFAULT_REGION: 'eu-west-1',
      }),
      timeoutMs: CLI_TIMEOUT_MS,
    });
  }

  async function awsJson(args: readonly string[]): Promise<Record<string, unknown>> {
    const result = await aws(args);
    expectSuccess(result, `aws dynamodb ${args.join(' ')}`);
    return parseOutput(result) as Record<string, unknown>;
  }

  async function expectServiceError(args: readonly string[], code: string): Promise<string> {
    const result = await aws(args);
    expect(result.code, result.stderr).toBe(SERVICE_ERROR_EXIT);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain(`An error occurred (${code})`);
    return result.stderr;
  }

  const json = (value: unknown): string => JSON.stringify(value);
  const key = (device: string, seq: number): Record<string, unknown> => ({ device: { S: device }, seq: { N: String(seq) } });
  /** 20 readings of d1 and 5 of d2: one full BatchWriteItem. */
  const readings = [
    ...Array.from({ length: 20 }, (_, i) => ({ device: 'd1', seq: i + 1 })),
    ...Array.from({ length: 5 }, (_, i) => ({ device: 'd2', seq: i + 1 })),
  ].map(({ device, seq }) => ({ ...key(device, seq), reading: { N: String(seq * 1.5) }, label: { S: `${device}#${seq}` } }));

  it('creates a table and waits for it', { timeout: 120_000 }, async () => {
    const created = await awsJson([
      'create-table',
      '--table-name', 'Events',
      '--attribute-definitions', 'AttributeName=device,AttributeType=S', 'AttributeName=seq,AttributeType=N',
      '--key-schema', 'AttributeName=device,KeyType=HASH', 'AttributeName=seq,KeyType=RANGE',
      '--billing-mode', 'PAY_PER_REQUEST',
    ]);
    expect(created.TableDescription).toMatchObject({
      TableName: 'Events',
      // DynamoDB answers CREATING and the waiter below polls until ACTIVE.
      TableStatus: expect.stringMatching(/^(CREATING|ACTIVE)$/),
      TableArn: expect.stringMatching(/^arn:aws:dynamodb:[a-z0-9-]+:\d{12}:table\/Events$/),
    });
    expect(await awsJson(['wait', 'table-exists', '--table-name', 'Events'])).toEqual({});
  });

  it('batch-writes 25 items, then queries with a key condition and a filter', { timeout: 120_000 }, async () => {
    const written = await awsJson([
      'batch-write-item',
      '--request-items', json({ Events: readings.map((Item) => ({ PutRequest: { Item } })) }),
    ]);
    expect(written).toEqual({ UnprocessedItems: {} });

    const queried = await awsJson([
      'query',
      '--table-name', 'Events',
      '--key-condition-expression', 'device = :d AND seq BETWEEN :lo AND :hi',
      '--filter-expression', 'reading > :min',
      '--projection-expression', 'seq, #l',
      '--expression-attribute-names', json({ '#l': 'label' }),
      '--expression-attribute-values', json({ ':d': { S: 'd1' }, ':lo': { N: '5' }, ':hi': { N: '9' }, ':min': { N: '9' } }),
      '--no-scan-index-forward',
      '--consistent-read',
    ]);
    expect(queried).toEqual({
      Items: [9, 8, 7].map((seq) => ({ seq: { N: String(seq) }, label: { S: `d1#${seq}` } })),
      Count: 3,
      ScannedCount: 5,
      ConsumedCapacity: null,
    });
  });

  it('scans in pages: --max-items stops with a NextToken, --starting-token resumes mid-page', { timeout: 120_000 }, async () => {
    const first = await awsJson(['scan', '--table-name', 'Events', '--page-size', '4', '--max-items', '10']);
    const firstItems = first.Items as Record<string, unknown>[];
    expect(firstItems).toHaveLength(10);
    expect(first.NextToken).toEqual(expect.any(String));

    // 10 is not a multiple of 4: the token holds the key ending page 2 and how much of page 3 was used.
    const rest = await awsJson(['scan', '--table-name', 'Events', '--page-size', '4', '--starting-token', first.NextToken as string]);
    const restItems = rest.Items as Record<string, unknown>[];
    expect(restItems).toHaveLength(15);
    expect(rest.NextToken).toBeUndefined();
    // The CLI sums the pages' Count as the service sent them, but does not cut Count where it cuts Items:
    // the first run adds all of page 3 (4 + 4 + 4), the resumed run zeroes that page and adds the 13 after.
    expect([first.Count, first.ScannedCount, rest.Count, rest.ScannedCount]).toEqual([12, 12, 13, 13]);
    const seen = [...firstItems, ...restItems].map((item) => json([item.device, item.seq]));
    expect(new Set(seen).size).toBe(seen.length);
    const byKey = (a: Record<string, unknown>, b: Record<string, unknown>): number =>
      json([a.device, a.seq]).localeCompare(json([b.device, b.seq]));
    expect([...firstItems, ...restItems].sort(byKey)).toEqual([...readings].sort(byKey));
  });

  it('updates with an update expression and a condition', { timeout: 120_000 }, async () => {
    const updated = await awsJson([
      'update-item',
      '--table-name', 'Events',
      '--key', json(key('d2', 1)),
      '--update-expression', 'SET #l = :l, tally = if_not_exists(tally, :zero) + :one REMOVE reading ADD tags :t',
      '--condition-expression', 'attribute_exists(device) AND begins_with(#l, :prefix)',
      '--expression-attribute-names', json({ '#l': 'label' }),
      '--expression-attribute-values',
      json({ ':l': { S: 'renamed' }, ':zero': { N: '0' }, ':one': { N: '1' }, ':t': { SS: ['b', 'a'] }, ':prefix': { S: 'd2#' } }),
      '--return-values', 'ALL_NEW',
    ]);
    const { tags, ...attributes } = (updated as { Attributes: { tags: { SS: string[] } } }).Attributes;
    expect(attributes).toEqual({ ...key('d2', 1), label: { S: 'renamed' }, tally: { N: '1' } });
    // A set has no order.
    expect(tags.SS.toSorted()).toEqual(['a', 'b']);
  });

  it('transact-writes four actions at once, and cancels a transaction whose condition fails', { timeout: 120_000 }, async () => {
    const transacted = await awsJson([
      'transact-write-items',
      '--transact-items',
      json([
        {
          Put: {
            TableName: 'Events',
            Item: { ...key('d3', 1), note: { S: 'new device' } },
            ConditionExpression: 'attribute_not_exists(device)',
          },
        },
        {
          Update: {
            TableName: 'Events',
            Key: key('d2', 2),
            UpdateExpression: 'SET #l = :l',
            ExpressionAttributeNames: { '#l': 'label' },
            ExpressionAttributeValues: { ':l': { S: 'in a transaction' } },
          },
        },
        { Delete: { TableName: 'Events', Key: key('d2', 3) } },
        { ConditionCheck: { TableName: 'Events', Key: key('d1', 1), ConditionExpression: 'attribute_exists(reading)' } },
      ]),
    ]);
    expect(transacted).toEqual({});

    const read = await awsJson([
      'batch-get-item',
      '--request-items',
      json({ Events: { Keys: [key('d3', 1), key('d2', 2), key('d2', 3)], ConsistentRead: true } }),
    ]);
    expect(read.UnprocessedKeys).toEqual({});
    const items = (read.Responses as { Events: Record<string, unknown>[] }).Events;
    expect(items).toHaveLength(2);
    expect(items).toEqual(
      expect.arrayContaining([
        { ...key('d3', 1), note: { S: 'new device' } },
        { ...key('d2', 2), reading: { N: '3' }, label: { S: 'in a transaction' } },
      ]),
    );

    const stderr = await expectServiceError(
      [
        'transact-write-items',
        '--transact-items',
        json([
          { Put: { TableName: 'Events', Item: { ...key('d3', 2) } } },
          { ConditionCheck: { TableName: 'Events', Key: key('d2', 3), ConditionExpression: 'attribute_exists(device)' } },
        ]),
      ],
      'TransactionCanceledException',
    );
    expect(stderr).toContain('[None, ConditionalCheckFailed]');
  });

  it('reports a failed conditional put as ConditionalCheckFailedException with the service-error exit code', { timeout: 120_000 }, async () => {
    const stderr = await expectServiceError(
      [
        'put-item',
        '--table-name', 'Events',
        '--item', json({ ...key('d1', 1), label: { S: 'overwritten' } }),
        '--condition-expression', 'attribute_not_exists(device)',
      ],
      'ConditionalCheckFailedException',
    );
    expect(stderr).toMatch(/when calling the PutItem operation.*: The conditional request failed/);
    const kept = await awsJson(['get-item', '--table-name', 'Events', '--key', json(key('d1', 1)), '--consistent-read']);
    expect(kept).toEqual({ Item: readings[0] });
  });

  it('refuses a request signed with the wrong secret', { timeout: 120_000 }, async () => {
    const result = await aws(['list-tables'], 'not-the-secret');
    expect(result.code, result.stderr).toBe(SERVICE_ERROR_EXIT);
    expect(result.stderr).toContain('An error occurred (InvalidSignatureException)');
  });

  it('deletes the table and waits until it is gone', { timeout: 120_000 }, async () => {
    const deleted = await awsJson(['delete-table', '--table-name', 'Events']);
    expect(deleted.TableDescription).toMatchObject({ TableName: 'Events', TableStatus: 'DELETING' });
    expect(await awsJson(['wait', 'table-not-exists', '--table-name', 'Events'])).toEqual({});
    const stderr = await expectServiceError(['describe-table', '--table-name', 'Events'], 'ResourceNotFoundException');
    expect(stderr).toContain('Requested resource not found: Table: Events not found');
  });
});
