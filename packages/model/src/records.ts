/**
 * Records keyed by names users choose: attributes, map keys, tables, indexes, tags. Any string is a
 * legal name, `__proto__` and `constructor` included, so plain `record[name]` is wrong both ways:
 * assigning `__proto__` changes the prototype instead of adding a member, and reading `constructor`
 * or `toString` finds Object.prototype's where the record has no such member.
 */

/** The record's own member `key`, never an inherited one; undefined also when there is no record. */
export function getOwn<T>(record: Readonly<Record<string, T>> | undefined, key: string): T | undefined {
  return record !== undefined && Object.hasOwn(record, key) ? record[key] : undefined;
}

/** Sets the record's own member `key`, even one named `__proto__`. */
export function setOwn<T>(record: Record<string, T>, key: string, value: T): void {
  if (key === '__proto__') Object.defineProperty(record, key, { value, writable: true, enumerable: true, configurable: true });
  else record[key] = value;
}
