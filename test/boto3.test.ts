import { devNull } from 'node:os';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEBIAN_PYTHON, killAllStarted, runProcess, startShoalDev } from './clients/processes.ts';
import type { ShoalDev } from './clients/processes.ts';

/** Debian's boto3, unchanged, runs an application-like workload against a real `shoal dev` process. */

const WORKLOAD = resolve(import.meta.dirname, 'clients', 'boto3_workload.py');

let shoal: ShoalDev;

beforeAll(async () => {
  // The workload's own key: every request must carry a valid botocore SigV4 signature.
  shoal = await startShoalDev({ accessKeyId: 'local', secretAccessKey: 'local' });
});

afterAll(async () => {
  try {
    expect(await shoal.stop()).toBe(0);
  } finally {
    killAllStarted();
  }
});

const decimal = (text: string): { Decimal: string } => ({ Decimal: text });
const range = (from: number, to: number, step = 1): number[] =>
  Array.from({ length: Math.floor((to - from) / step) + 1 }, (_, i) => from + i * step);

describe('boto3', () => {
  it('runs the workload with the client and resource APIs and sees what DynamoDB would answer', { timeout: 180_000 }, async () => {
    // -I: Debian's interpreter on its own packages, whatever PYTHONPATH or pyenv set up around it.
    const run = await runProcess(DEBIAN_PYTHON, ['-I', WORKLOAD, shoal.endpoint], {
      env: {
        PATH: '/usr/bin:/bin',
        HOME: process.env.HOME,
        AWS_CONFIG_FILE: devNull,
        AWS_SHARED_CREDENTIALS_FILE: devNull,
        AWS_EC2_METADATA_DISABLED: 'true',
      },
      timeoutMs: 150_000,
    });
    expect(run, run.stderr).toMatchObject({ code: 0, signal: null, stderr: '' });
    const { query_index: queryIndex, ...summary } = JSON.parse(run.stdout) as Record<string, unknown> & {
      query_index: { customer: string; order_id: { Decimal: string } }[];
    };

    // Equal sort keys in an index come back in no documented order: check the order of the sort key only.
    expect(queryIndex.map((item) => item.order_id.Decimal)).toEqual(['0', '0', '0', '2', '2', '2']);
    expect(queryIndex.toSorted((a, b) => (a.customer + a.order_id.Decimal).localeCompare(b.customer + b.order_id.Decimal))).toEqual(
      ['c1', 'c2', 'c3'].flatMap((customer) => [0, 2].map((id) => ({ customer, order_id: decimal(String(id)), status: 'open' }))).toSorted(
        (a, b) => (a.customer + a.order_id.Decimal).localeCompare(b.customer + b.order_id.Decimal),
      ),
    );

    const scanned = ['c1', 'c2', 'c3'].flatMap((customer) => range(0, 18, 2).map((id) => `${customer}/${id}`)).sort();
    expect(summary).toEqual({
      boto3: expect.any(String),
      created: { status: 'ACTIVE', keys: ['customer', 'order_id'], indexes: ['by-status'] },
      typed: {
        item: {
          customer: 'typed',
          order_id: decimal('1'),
          // Numbers come back as Decimal with every digit; equal in value to what was sent.
          exact: [
            decimal('3.1415926535897932384626433832795028842'),
            decimal('-1.2345E-38'),
            decimal('-99999999999999999999999999999999999999'),
            decimal('1E-130'),
            decimal('12345678901234567890123456789012345678'),
          ],
          flag: true,
          nothing: null,
          blob: { Binary: Buffer.from('\x00\x01shoal\xff', 'latin1').toString('base64') },
          names: { set: ['ann', 'bob'] },
          scores: { set: [decimal('1.5'), decimal('2')] },
          blobs: { set: [{ Binary: 'YQ==' }, { Binary: 'Yg==' }] },
          nested: { list: [decimal('1'), 'two', { three: decimal('3') }], empty_map: {}, empty_list: [] },
        },
        exact_numbers_equal: true,
        order_id_is_decimal: true,
      },
      projected_low_level: {
        flag: { BOOL: true },
        nested: { M: { list: { L: [{ M: { three: { N: '3' } } }] } } },
      },
      // DynamoDB answers 1E+100 in plain notation (boto/boto3#2500 shows the string it sent back).
      huge_low_level: { N: `1${'0'.repeat(100)}` },
      batch_count: 60,
      query: { order_ids: [14, 12, 10, 8, 6], count: 5, scanned: 10, first_total: decimal('35') },
      query_pages: { pages: 4, order_ids: range(0, 19) },
      // 60 orders and the typed item, 7 to a page: the last page is short, so it ends the scan.
      scan_paginator: { pages: 9, scanned_per_page: [7, 7, 7, 7, 7, 7, 7, 7, 5], count: 30, keys: scanned },
      query_resumed: { first: range(0, 8), rest: range(9, 19), rest_has_token: false },
      update: {
        customer: 'c1',
        order_id: decimal('4'),
        status: 'paid',
        total: decimal('10.05'),
        notes: ['first'],
        visits: decimal('1'),
      },
      conditional_put: { caught: 'ConditionalCheckFailedException', code: 'ConditionalCheckFailedException' },
      conditional_delete: { caught: 'ConditionalCheckFailedException', code: 'ConditionalCheckFailedException' },
      transaction: {
        after: [
          { customer: 'c2', order_id: decimal('2'), status: 'cancelled' },
          { customer: 'c9', order_id: decimal('1'), status: 'new' },
        ],
        unprocessed: {},
      },
      cancelled_transaction: {
        caught: 'TransactionCanceledException',
        reasons: ['None', 'ConditionalCheckFailed'],
        message: 'Transaction cancelled, please refer cancellation reasons for specific reasons [None, ConditionalCheckFailed]',
      },
      cancelled_put_absent: true,
      idempotency: {
        // Sent twice with one token: applied once. A missing item is an empty response.
        responses: [{ Item: { visits: { N: '1' } } }, {}],
        mismatch: 'IdempotentParameterMismatchException',
      },
      parallel_scan: { items: 61, distinct: 61, total: 61 },
      // One write unit per KB written; a read unit per 4 KB read strongly, half of one eventually.
      capacity: {
        put: { TableName: 'Orders', CapacityUnits: 1 },
        get_eventual: { TableName: 'Orders', CapacityUnits: 0.5 },
        get_strong: { TableName: 'Orders', CapacityUnits: 1 },
      },
      settings: {
        // DynamoDB may show ENABLING for a while before ENABLED.
        ttl: { AttributeName: 'expires', TimeToLiveStatus: expect.stringMatching(/^ENABL(ING|ED)$/) },
        tags: [{ Key: 'team', Value: 'shoal' }],
        list_tables_pages: expect.toSatisfy((pages: number) => pages >= 3),
        table_names: ['Extra1', 'Extra2', 'Orders'],
      },
      errors: {
        missing_table: { code: 'ResourceNotFoundException', message: 'Requested resource not found', status: 400 },
        key_missing_from_item: {
          code: 'ValidationException',
          message: 'One or more parameter values were invalid: Missing the key order_id in the item',
          status: 400,
        },
        wrong_key_type: { code: 'ValidationException', message: 'The provided key element does not match the schema', status: 400 },
        bad_update_expression: {
          code: 'ValidationException',
          message: 'Invalid UpdateExpression: Syntax error; token: "<EOF>", near: "SET"',
          status: 400,
        },
        query_without_partition_key: {
          code: 'ValidationException',
          message: 'Query condition missed key schema element: customer',
          status: 400,
        },
        too_many_keys: {
          code: 'ValidationException',
          message: expect.stringMatching(
            /^1 validation error detected: Value '.*' at 'requestItems\.Orders\.member\.keys' failed to satisfy constraint: Member must have length less than or equal to 100$/,
          ),
          status: 400,
        },
      },
      missing_table_by_class: 'ResourceNotFoundException',
      tables_after_delete: [],
    });
  });
});
