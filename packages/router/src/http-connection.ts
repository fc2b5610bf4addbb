import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';

/**
 * A lean HTTP/1.1 server connection for the DynamoDB endpoint. node:http costs about 20 µs of CPU per
 * request in stream and event machinery (an IncomingMessage and a ServerResponse, each a stream, and a
 * write per response); a DynamoDB request needs none of it: its body is read whole, its answer is one
 * string. This parses requests straight from the socket's bytes and answers each with one write,
 * joining the answers ready at the same time into one (pipelined requests cost one syscall).
 *
 * What it speaks: HTTP/1.0 and 1.1 requests with a Content-Length or chunked body, keep-alive (the
 * default of 1.1; `Connection: keep-alive` for 1.0) and `Connection: close`, `Expect: 100-continue`,
 * pipelining (requests run concurrently, answers go out in request order). Malformed requests get 400
 * (431 for oversized headers) and the connection is closed, as node:http does.
 */

export interface HttpRequest {
  method: string;
  /** The request target as sent (path and query). */
  url: string;
  /** Header names in lower case; repeated headers joined with ", " (the first kept for single-valued ones), as node:http does. */
  headers: Record<string, string>;
  body: Buffer;
}

export interface HttpAnswer {
  status: number;
  /** Header lines besides Content-Length, Date and Connection, already validated by the caller. */
  headers: ReadonlyArray<readonly [string, string]>;
  /** Sent as UTF-8; Content-Length is its byte length. */
  body: string;
}

export interface HttpConnectionOptions {
  /** Answers one request; never rejects (failures are answers too). */
  answer(request: HttpRequest): Promise<HttpAnswer>;
  /** Answer to a body over `maxBodyBytes`, sent at once; the rest of the body is then drained for a while and the connection cut. */
  tooLarge(): HttpAnswer;
  maxBodyBytes: number;
  /** How long a refused oversized body may keep arriving before the connection is cut. */
  lingerMs: number;
  /** An idle connection (or one stalled mid-request) is closed after this long. */
  idleTimeoutMs: number;
}

/** node:http's default limit on the request line and headers together. */
const MAX_HEAD_BYTES = 16 * 1024;
/** Requests one connection may have unanswered before it stops reading (a flood cannot grow memory unbounded). */
const MAX_PIPELINED = 256;
const HEAD_END = '\r\n\r\n';
const CRLF = Buffer.from('\r\n');
const CONTINUE = 'HTTP/1.1 100 Continue\r\n\r\n';
const BAD_REQUEST = 'HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n';
const HEADERS_TOO_LARGE = 'HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n\r\n';
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** Headers node:http keeps the first of when repeated. */
const SINGLE_VALUED = new Set([
  'age', 'authorization', 'content-length', 'content-type', 'etag', 'expires', 'from', 'host', 'if-modified-since',
  'if-unmodified-since', 'last-modified', 'location', 'max-forwards', 'proxy-authorization', 'referer', 'retry-after',
  'server', 'user-agent',
]);

class BadRequest extends Error {}

/**
 * Connections with answers ready, written together once this turn of the event loop is over. A
 * write to a loopback or LAN socket wakes its client; answers written one by one as each request
 * completes wake the clients once per answer, while answers written in one burst reach clients that
 * are still awake and read several per wake-up.
 */
const readyToFlush = new Set<HttpConnection>();
function flushReady(): void {
  for (const connection of readyToFlush) connection.flush();
  readyToFlush.clear();
}
function scheduleFlush(connection: HttpConnection): void {
  if (readyToFlush.size === 0) setImmediate(flushReady);
  readyToFlush.add(connection);
}

/** The Date header's value, formatted at most once a second. */
let dateSecond = -1;
let dateText = '';
function httpDate(): string {
  const now = Date.now();
  const second = Math.floor(now / 1000);
  if (second !== dateSecond) {
    dateSecond = second;
    dateText = new Date(now).toUTCString();
  }
  return dateText;
}

interface ParsedHead {
  method: string;
  url: string;
  headers: Record<string, string>;
  /** HTTP/1.1 (or later 1.x) rather than 1.0. */
  http11: boolean;
  keepAlive: boolean;
  chunked: boolean;
  contentLength: number;
}

/** Whether each character code (below 128) may appear in a token (a method or header name). */
const TOKEN_CODES = Uint8Array.from({ length: 128 }, (_, code) => (TOKEN.test(String.fromCharCode(code)) ? 1 : 0));
const SPACE = 0x20;
const TAB = 0x09;

/** Whether `text[start, end)` is a token: checked by code, as a regular expression over a slice costs a string per header. */
function isToken(text: string, start: number, end: number): boolean {
  if (end <= start) return false;
  for (let i = start; i < end; i++) {
    const code = text.charCodeAt(i);
    if (code >= 128 || TOKEN_CODES[code] === 0) return false;
  }
  return true;
}

/**
 * What no request head may hold: control characters other than tab (which also covers header
 * values; obs-text, 0x80-0xff, is allowed), and CR or LF other than as a line's CRLF. One search of
 * the whole head costs less than a check of each value.
 */
const FORBIDDEN_IN_HEAD = /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|\r(?!\n)|(?<!\r)\n/;

/** Whether a character code is optional whitespace around a header value. */
const isWhitespace = (code: number): boolean => code === SPACE || code === TAB;

/**
 * The header names SDKs and browsers send, lower-case, by length: a name among them is matched where
 * it stands, without the slice, lower-casing and interning of a new string that an other name costs.
 */
const COMMON_HEADER_NAMES: ReadonlyArray<readonly string[] | undefined> = (() => {
  const byLength: string[][] = [];
  for (const name of [
    'host', 'content-type', 'content-length', 'x-amz-target', 'x-amz-date', 'authorization', 'connection', 'user-agent',
    'x-amz-user-agent', 'amz-sdk-invocation-id', 'amz-sdk-request', 'accept', 'accept-encoding', 'expect',
    'transfer-encoding', 'origin', 'x-amz-security-token', 'x-amz-content-sha256', 'keep-alive',
  ]) {
    (byLength[name.length] ??= []).push(name);
  }
  return byLength;
})();

/** The common header name `text[start, end)` spells (a token, in any case), or undefined. */
function commonHeaderName(text: string, start: number, end: number): string | undefined {
  const candidates = COMMON_HEADER_NAMES[end - start];
  if (candidates === undefined) return undefined;
  candidates: for (const name of candidates) {
    for (let i = 0; i < name.length; i++) {
      // `| 0x20` lower-cases a letter; the names hold letters, digits and '-', which no other token character maps to.
      if ((text.charCodeAt(start + i) | 0x20) !== name.charCodeAt(i)) continue candidates;
    }
    return name;
  }
  return undefined;
}

function parseHead(text: string): ParsedHead {
  if (FORBIDDEN_IN_HEAD.test(text)) throw new BadRequest('malformed request head');
  let lineEnd = text.indexOf('\r\n');
  if (lineEnd < 0) lineEnd = text.length;
  // "<method> <url> HTTP/1.<digit>", single spaces between.
  const methodEnd = text.indexOf(' ');
  if (methodEnd < 0 || methodEnd >= lineEnd || !isToken(text, 0, methodEnd)) throw new BadRequest('malformed request line');
  const urlEnd = text.indexOf(' ', methodEnd + 1);
  if (urlEnd <= methodEnd + 1 || urlEnd >= lineEnd) throw new BadRequest('malformed request line');
  const minor = text.charCodeAt(lineEnd - 1);
  if (lineEnd - urlEnd - 1 !== 'HTTP/1.0'.length || !text.startsWith('HTTP/1.', urlEnd + 1) || (minor !== 0x30 && minor !== 0x31)) {
    throw new BadRequest('malformed request line');
  }
  // Header values may hold tabs; the request line may not (llhttp refuses a tab in the URL too).
  const tab = text.indexOf('\t');
  if (tab >= 0 && tab < lineEnd) throw new BadRequest('malformed request line');
  const method = text.slice(0, methodEnd);
  const url = text.slice(methodEnd + 1, urlEnd);
  const http11 = minor === 0x31;
  const headers: Record<string, string> = {};
  for (let start = lineEnd + 2; start < text.length; start = lineEnd + 2) {
    lineEnd = text.indexOf('\r\n', start);
    if (lineEnd < 0) lineEnd = text.length;
    const colon = text.indexOf(':', start);
    // No name, a space before the colon, or a folded continuation line: refused, as llhttp does.
    if (colon < 0 || colon >= lineEnd || !isToken(text, start, colon)) throw new BadRequest('malformed header');
    let valueStart = colon + 1;
    let valueEnd = lineEnd;
    while (valueStart < valueEnd && isWhitespace(text.charCodeAt(valueStart))) valueStart++;
    while (valueEnd > valueStart && isWhitespace(text.charCodeAt(valueEnd - 1))) valueEnd--;
    const key = commonHeaderName(text, start, colon) ?? text.slice(start, colon).toLowerCase();
    const value = text.slice(valueStart, valueEnd);
    const previous = headers[key];
    if (previous === undefined) headers[key] = value;
    else if (key === 'content-length' && previous !== value) throw new BadRequest('conflicting Content-Length');
    else if (!SINGLE_VALUED.has(key)) headers[key] = `${previous}, ${value}`;
  }
  const connection = (headers.connection ?? '').toLowerCase();
  const keepAlive = http11 ? !/(^|,)\s*close\s*(,|$)/.test(connection) : /(^|,)\s*keep-alive\s*(,|$)/.test(connection);
  const transferEncoding = headers['transfer-encoding'];
  let chunked = false;
  let contentLength = 0;
  if (transferEncoding !== undefined) {
    // Both framings at once is how requests get smuggled past proxies: refused, as llhttp does.
    if (headers['content-length'] !== undefined) throw new BadRequest('Content-Length with Transfer-Encoding');
    if (!/(^|,)\s*chunked\s*$/i.test(transferEncoding)) throw new BadRequest('unsupported Transfer-Encoding');
    chunked = true;
  } else if (headers['content-length'] !== undefined) {
    if (!/^\d{1,15}$/.test(headers['content-length'])) throw new BadRequest('malformed Content-Length');
    contentLength = Number(headers['content-length']);
  }
  return { method, url, headers, http11, keepAlive, chunked, contentLength };
}

/** One answer slot, filled when its request's handler finishes; answers leave in slot order. */
interface Slot {
  text: string | undefined;
  /** Close the connection once this answer is out. */
  last: boolean;
}

/** The state of the request being read. */
type Reading =
  | { phase: 'head' }
  | { phase: 'body'; head: ParsedHead; chunks: Buffer[]; remaining: number; size: number }
  | { phase: 'chunked'; head: ParsedHead; chunks: Buffer[]; size: number; chunkRemaining: number; trailers: boolean }
  | { phase: 'discard'; drained: number }
  | { phase: 'done' };

export class HttpConnection {
  private readonly socket: Socket;
  private readonly options: HttpConnectionOptions;
  private pending: Buffer | undefined;
  private reading: Reading = { phase: 'head' };
  private readonly slots: Slot[] = [];
  private paused = false;
  private closing = false;
  private destroyed = false;
  private peerEnded = false;
  private lingerTimer: NodeJS.Timeout | undefined;

  constructor(socket: Socket, options: HttpConnectionOptions) {
    this.socket = socket;
    this.options = options;
    socket.setNoDelay(true);
    socket.setTimeout(options.idleTimeoutMs, () => {
      // Quiet while a request is being answered is not idleness: wait another period.
      if (this.slots.length > 0) socket.setTimeout(options.idleTimeoutMs);
      else this.destroy();
    });
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('end', () => {
      this.peerEnded = true;
      this.finishIfDone();
    });
    socket.on('error', () => this.destroy());
    socket.on('close', () => this.destroy());
    socket.on('drain', () => this.resumeIfAllowed());
  }

  /** No request is being read or answered. */
  get idle(): boolean {
    return this.slots.length === 0 && this.reading.phase === 'head' && this.pending === undefined;
  }

  /** Closes once the requests already received are answered (at once when idle). */
  closeWhenIdle(): void {
    this.closing = true;
    this.finishIfDone();
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    clearTimeout(this.lingerTimer);
    this.slots.length = 0;
    this.socket.destroy();
  }

  private receive(chunk: Buffer): void {
    if (this.destroyed) return;
    if (this.reading.phase === 'discard') {
      this.discard(chunk.length);
      return;
    }
    if (this.reading.phase === 'done' || this.closing) return;
    this.pending = this.pending === undefined ? chunk : Buffer.concat([this.pending, chunk]);
    try {
      this.parse();
    } catch (error) {
      if (!(error instanceof BadRequest)) throw error;
      this.refuse(BAD_REQUEST);
      return;
    }
    if (this.slots.length >= MAX_PIPELINED && !this.paused) {
      this.paused = true;
      this.socket.pause();
    }
  }

  /** Consumes every complete request in `pending`. */
  private parse(): void {
    while (this.pending !== undefined && !this.destroyed) {
      const buffer = this.pending;
      const reading = this.reading;
      if (reading.phase === 'head') {
        // Searched in text: a string's indexOf is a builtin, a Buffer's a call into the binding
        // costing more than the bytes it decodes here (the head is parsed from this text).
        const text = buffer.toString('latin1', 0, Math.min(buffer.length, MAX_HEAD_BYTES + HEAD_END.length));
        const end = text.indexOf(HEAD_END);
        if (end < 0) {
          if (buffer.length > MAX_HEAD_BYTES) this.refuse(HEADERS_TOO_LARGE);
          return;
        }
        if (end > MAX_HEAD_BYTES) {
          this.refuse(HEADERS_TOO_LARGE);
          return;
        }
        const head = parseHead(text.slice(0, end));
        this.take(end + HEAD_END.length);
        this.startBody(head);
      } else if (reading.phase === 'body') {
        const piece = buffer.length <= reading.remaining ? buffer : buffer.subarray(0, reading.remaining);
        reading.chunks.push(piece);
        reading.remaining -= piece.length;
        this.take(piece.length);
        if (reading.remaining === 0) this.dispatch(reading.head, reading.chunks, reading.size);
        else return;
      } else if (reading.phase === 'chunked') {
        if (!this.parseChunk(reading, buffer)) return;
      } else {
        return;
      }
    }
  }

  private startBody(head: ParsedHead): void {
    const tooLarge = head.contentLength > this.options.maxBodyBytes;
    if (tooLarge) {
      this.tooLarge(head);
      return;
    }
    const hasBody = head.chunked || head.contentLength > 0;
    // A client waiting for leave to send its body gets it unless the body is already here.
    if (hasBody && head.http11 && (head.headers.expect ?? '').toLowerCase() === '100-continue' && this.pending === undefined) {
      this.socket.write(CONTINUE);
    }
    if (head.chunked) {
      this.reading = { phase: 'chunked', head, chunks: [], size: 0, chunkRemaining: -1, trailers: false };
    } else if (head.contentLength > 0) {
      this.reading = { phase: 'body', head, chunks: [], remaining: head.contentLength, size: head.contentLength };
    } else {
      this.dispatch(head, [], 0);
    }
  }

  /** Consumes one piece of a chunked body; false when more bytes are needed. */
  private parseChunk(reading: Extract<Reading, { phase: 'chunked' }>, buffer: Buffer): boolean {
    if (reading.trailers) {
      // Trailer fields up to an empty line; their content is ignored.
      const lineEnd = buffer.indexOf(CRLF);
      if (lineEnd < 0) {
        if (buffer.length > MAX_HEAD_BYTES) throw new BadRequest('trailers too large');
        return false;
      }
      this.take(lineEnd + CRLF.length);
      if (lineEnd === 0) this.dispatch(reading.head, reading.chunks, reading.size);
      return true;
    }
    if (reading.chunkRemaining < 0) {
      const lineEnd = buffer.indexOf(CRLF);
      if (lineEnd < 0) {
        if (buffer.length > 1024) throw new BadRequest('chunk size line too long');
        return false;
      }
      const sizeText = buffer.toString('latin1', 0, lineEnd).split(';')[0].trim();
      if (!/^[0-9a-fA-F]{1,8}$/.test(sizeText)) throw new BadRequest('malformed chunk size');
      const size = Number.parseInt(sizeText, 16);
      this.take(lineEnd + CRLF.length);
      if (size === 0) {
        reading.trailers = true;
        return true;
      }
      if (reading.size + size > this.options.maxBodyBytes) {
        this.tooLarge(reading.head);
        return false;
      }
      reading.chunkRemaining = size;
      return true;
    }
    if (reading.chunkRemaining > 0) {
      const piece = buffer.length <= reading.chunkRemaining ? buffer : buffer.subarray(0, reading.chunkRemaining);
      reading.chunks.push(piece);
      reading.size += piece.length;
      reading.chunkRemaining -= piece.length;
      this.take(piece.length);
      return reading.chunkRemaining > 0 ? false : true;
    }
    // The CRLF after a chunk's data.
    if (buffer.length < CRLF.length) return false;
    if (buffer[0] !== 0x0d || buffer[1] !== 0x0a) throw new BadRequest('missing CRLF after chunk');
    this.take(CRLF.length);
    reading.chunkRemaining = -1;
    return true;
  }

  /** Drops the first `count` bytes of `pending`. */
  private take(count: number): void {
    const buffer = this.pending!;
    this.pending = count >= buffer.length ? undefined : buffer.subarray(count);
  }

  /** Starts answering a complete request; its answer takes the next slot. */
  private dispatch(head: ParsedHead, chunks: Buffer[], size: number): void {
    const body = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size);
    const slot: Slot = { text: undefined, last: !head.keepAlive };
    this.slots.push(slot);
    this.reading = head.keepAlive ? { phase: 'head' } : { phase: 'done' };
    if (!head.keepAlive) this.pending = undefined;
    const request: HttpRequest = { method: head.method, url: head.url, headers: head.headers, body };
    void this.options.answer(request).then((answer) => {
      slot.text = this.format(answer, head, slot.last);
      scheduleFlush(this);
    });
  }

  private format(answer: HttpAnswer, head: ParsedHead, last: boolean): string {
    const body = head.method === 'HEAD' ? '' : answer.body;
    let text = `HTTP/1.1 ${answer.status} ${STATUS_CODES[answer.status] ?? 'Unknown'}\r\n`;
    for (const [name, value] of answer.headers) text += `${name}: ${value}\r\n`;
    text += `Content-Length: ${Buffer.byteLength(answer.body)}\r\nDate: ${httpDate()}\r\n`;
    if (last) text += 'Connection: close\r\n';
    else if (!head.http11) text += 'Connection: keep-alive\r\n';
    return `${text}\r\n${body}`;
  }

  /** Writes the answers ready at the head of the queue, in one write. */
  flush(): void {
    if (this.destroyed) return;
    let out = '';
    let last = false;
    while (this.slots.length > 0 && this.slots[0].text !== undefined) {
      const slot = this.slots.shift()!;
      out += slot.text;
      if (slot.last) {
        last = true;
        break;
      }
    }
    if (out === '') return;
    if (!this.socket.write(out) && !this.paused) {
      // A client that sends but does not read its answers must not grow our write buffer without bound.
      this.paused = true;
      this.socket.pause();
    }
    if (last) {
      this.slots.length = 0;
      this.socket.end();
      return;
    }
    this.resumeIfAllowed();
    this.finishIfDone();
  }

  private resumeIfAllowed(): void {
    if (this.paused && !this.destroyed && this.slots.length < MAX_PIPELINED && !this.socket.writableNeedDrain) {
      this.paused = false;
      this.socket.resume();
    }
  }

  /** Ends the connection once nothing more will be answered on it. */
  private finishIfDone(): void {
    if (this.destroyed || this.slots.length > 0) return;
    if (this.closing || this.peerEnded) this.socket.end();
  }

  /** Answers a malformed request and closes, after the answers owed to earlier requests. */
  private refuse(response: string): void {
    this.pending = undefined;
    this.reading = { phase: 'done' };
    this.slots.push({ text: response, last: true });
    this.flush();
  }

  /**
   * Answers 413 at once. Closing right away would make the kernel reset the connection under a
   * client still sending, and the client would lose this answer; so the rest of the body is read and
   * discarded for a while (up to another `maxBodyBytes` or `lingerMs`), then the connection is cut.
   */
  private tooLarge(head: ParsedHead): void {
    this.pending = undefined;
    this.reading = { phase: 'discard', drained: 0 };
    this.slots.push({ text: this.format(this.options.tooLarge(), head, true), last: false });
    this.flush();
    this.lingerTimer = setTimeout(() => this.destroy(), this.options.lingerMs);
    this.lingerTimer.unref();
  }

  private discard(bytes: number): void {
    if (this.reading.phase !== 'discard') return;
    this.reading.drained += bytes;
    if (this.reading.drained > this.options.maxBodyBytes) this.destroy();
  }
}
