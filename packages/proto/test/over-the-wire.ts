import { fromBinary, toBinary, type DescMessage, type MessageShape } from '@bufbuild/protobuf';

/** Through protobuf binary, as on the network. */
export function overTheWire<Desc extends DescMessage>(schema: Desc, message: MessageShape<Desc>): MessageShape<Desc> {
  return fromBinary(schema, toBinary(schema, message));
}
