/**
 * DynamoDB attribute values in their wire form. Binary values stay base64 strings, exactly as the JSON
 * protocol carries them, so items pass from HTTP to storage without conversion; code that needs the
 * bytes (sizes, key encoding, comparisons) decodes them.
 */
export type AttributeValue =
  | { S: string }
  | { N: string }
  | { B: string }
  | { BOOL: boolean }
  | { NULL: true }
  | { M: Record<string, AttributeValue> }
  | { L: AttributeValue[] }
  | { SS: string[] }
  | { NS: string[] }
  | { BS: string[] };

export type AttributeType = 'S' | 'N' | 'B' | 'BOOL' | 'NULL' | 'M' | 'L' | 'SS' | 'NS' | 'BS';

/** An item, or a key (the key attributes of an item). */
export type Item = Record<string, AttributeValue>;

/** The scalar types a key attribute may have. */
export type KeyAttributeType = 'S' | 'N' | 'B';
