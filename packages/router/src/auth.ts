import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { DynamoDbError } from '@shoal/model';

/**
 * AWS Signature Version 4 verification, as DynamoDB does it, for routers configured with credentials.
 * A router without credentials does not call this: it accepts every request.
 */

export interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
}

const ALGORITHM = 'AWS4-HMAC-SHA256';
const SERVICE = 'dynamodb';
/** How far a request's date may be from the server clock, as in AWS. */
const MAX_CLOCK_SKEW_MS = 15 * 60 * 1000;

function authError(type: string, message: string): DynamoDbError {
  return new DynamoDbError(type, message);
}

const sha256Hex = (data: string | Buffer): string => createHash('sha256').update(data).digest('hex');
const hmac = (key: Buffer | string, data: string): Buffer => createHmac('sha256', key).update(data).digest();

/** RFC 3986 encoding, as SigV4 canonicalisation wants (encodeURIComponent leaves !'()* alone). */
function uriEncode(text: string): string {
  return encodeURIComponent(text).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function canonicalQuery(search: string): string {
  const params = new URLSearchParams(search);
  return [...params]
    .map(([key, value]) => [uriEncode(key), uriEncode(value)])
    .sort(([a, x], [b, y]) => (a === b ? (x < y ? -1 : x > y ? 1 : 0) : a < b ? -1 : 1))
    .map(([key, value]) => `${key}=${value}`)
    .join('&');
}

function canonicalPath(path: string): string {
  const decode = (segment: string): string => {
    try {
      return decodeURIComponent(segment);
    } catch {
      return segment;
    }
  };
  return path.split('/').map((segment) => uriEncode(decode(segment))).join('/') || '/';
}

function headerValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  if (value === undefined) return undefined;
  return (Array.isArray(value) ? value.join(',') : value).trim().replace(/\s+/g, ' ');
}

/** `20261125T101500Z` → epoch ms, or undefined if not ISO 8601 basic format. */
function parseAmzDate(text: string): number | undefined {
  const match = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(text);
  if (match === null) return undefined;
  const [, y, mo, d, h, mi, s] = match.map(Number);
  return Date.UTC(y, mo - 1, d, h, mi, s);
}

function amzDateOf(ms: number): string {
  return new Date(ms).toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
}

/**
 * Checks the Authorization header of a request against the known credentials; throws DynamoDB's
 * error (MissingAuthenticationToken, IncompleteSignature, UnrecognizedClient, InvalidSignature).
 */
export function verifySignature(options: {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
  credentials: ReadonlyMap<string, string>;
  now: number;
}): void {
  const { headers } = options;
  const authorization = headerValue(headers, 'authorization');
  if (authorization === undefined || !authorization.startsWith('AWS4-')) {
    throw authError('MissingAuthenticationTokenException', 'Request is missing Authentication Token');
  }
  const [algorithm, ...rest] = authorization.split(' ');
  const fields = new Map<string, string>();
  for (const part of rest.join(' ').split(',')) {
    const separator = part.indexOf('=');
    if (separator > 0) fields.set(part.slice(0, separator).trim(), part.slice(separator + 1).trim());
  }
  const missing = ['Credential', 'Signature', 'SignedHeaders'].filter((name) => !fields.get(name));
  const dateText = headerValue(headers, 'x-amz-date');
  let message = missing.map((name) => `Authorization header requires '${name}' parameter. `).join('');
  if (dateText === undefined && headerValue(headers, 'date') === undefined) {
    message += "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. ";
  }
  if (message !== '') throw authError('IncompleteSignatureException', `${message}Authorization=${authorization}`);
  if (algorithm !== ALGORITHM) {
    throw authError('IncompleteSignatureException', `Unsupported AWS 'algorithm': '${algorithm}' (only ${ALGORITHM} for now). `);
  }

  const requestTime = dateText !== undefined ? parseAmzDate(dateText) : Date.parse(headerValue(headers, 'date')!);
  if (requestTime === undefined || Number.isNaN(requestTime)) {
    throw authError('IncompleteSignatureException', `Date must be in ISO-8601 'basic format'. Got '${dateText}'. See http://en.wikipedia.org/wiki/ISO_8601`);
  }
  const amzDate = amzDateOf(requestTime);
  if (requestTime < options.now - MAX_CLOCK_SKEW_MS) {
    throw authError(
      'InvalidSignatureException',
      `Signature expired: ${amzDate} is now earlier than ${amzDateOf(options.now - MAX_CLOCK_SKEW_MS)} (${amzDateOf(options.now)} - 15 min.)`,
    );
  }
  if (requestTime > options.now + MAX_CLOCK_SKEW_MS) {
    throw authError(
      'InvalidSignatureException',
      `Signature not yet current: ${amzDate} is still later than ${amzDateOf(options.now + MAX_CLOCK_SKEW_MS)} (${amzDateOf(options.now)} + 15 min.)`,
    );
  }

  const scope = fields.get('Credential')!.split('/');
  if (scope.length !== 5) {
    throw authError(
      'IncompleteSignatureException',
      `Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '${fields.get('Credential')}'`,
    );
  }
  const [accessKeyId, scopeDate, region, service, terminator] = scope;
  const scopeProblems: string[] = [];
  if (service !== SERVICE) scopeProblems.push(`Credential should be scoped to correct service: '${SERVICE}'. `);
  if (terminator !== 'aws4_request') scopeProblems.push(`Credential should be scoped with a valid terminator: 'aws4_request', not '${terminator}'. `);
  if (scopeDate !== amzDate.slice(0, 8)) {
    scopeProblems.push(`Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '${scopeDate}' != '${amzDate.slice(0, 8)}', from '${amzDate}'.`);
  }
  if (scopeProblems.length > 0) throw authError('InvalidSignatureException', scopeProblems.join(''));

  const signedHeaders = fields.get('SignedHeaders')!.toLowerCase().split(';');
  if (!signedHeaders.includes('host')) {
    throw authError('InvalidSignatureException', "'Host' must be a 'SignedHeader' in the AWS Authorization.");
  }
  const secret = options.credentials.get(accessKeyId);
  if (secret === undefined) {
    throw authError('UnrecognizedClientException', 'The security token included in the request is invalid.');
  }

  const url = new URL(options.url, 'http://localhost');
  const canonicalHeaders = signedHeaders.map((name) => `${name}:${headerValue(headers, name) ?? ''}\n`).join('');
  const payloadHash = headerValue(headers, 'x-amz-content-sha256') ?? sha256Hex(options.body);
  const canonicalRequest = [
    options.method,
    canonicalPath(url.pathname),
    canonicalQuery(url.search),
    canonicalHeaders,
    signedHeaders.join(';'),
    payloadHash,
  ].join('\n');
  const credentialScope = `${scopeDate}/${region}/${service}/${terminator}`;
  const stringToSign = [ALGORITHM, dateText ?? amzDate, credentialScope, sha256Hex(canonicalRequest)].join('\n');
  const signingKey = hmac(hmac(hmac(hmac(`AWS4${secret}`, scopeDate), region), service), terminator);
  const expected = Buffer.from(createHmac('sha256', signingKey).update(stringToSign).digest('hex'));
  const provided = Buffer.from(fields.get('Signature')!);
  if (expected.length !== provided.length || !timingSafeEqual(expected, provided)) {
    throw authError(
      'InvalidSignatureException',
      'The request signature we calculated does not match the signature you provided. ' +
        'Check your AWS Secret Access Key and signing method. Consult the service documentation for details.',
    );
  }
}
