import type { TableRecord, TableSchema } from '@shoal/model';
import { applyMetaCommand, type MetaCommand, type MetaState } from '../../src/index.ts';

/** The state after `commands`, each applied to the state the one before left. */
export function run(state: MetaState, ...commands: MetaCommand[]): MetaState {
  return commands.reduce((s, c) => applyMetaCommand(s, c).state, state);
}

/** An ACTIVE on-demand table's record, as createTable takes it (its id given then): keyed by pk (S) unless `schema` says otherwise. */
export function tableRecord(name: string, schema: Partial<Omit<TableSchema, 'name'>> = {}): TableRecord {
  return {
    schema: { name, tableId: 0, hashKey: { name: 'pk', type: 'S' }, indexes: [], ...schema },
    status: 'ACTIVE',
    createdAt: 1_700_000_000,
    billingMode: 'PAY_PER_REQUEST',
    tags: {},
  };
}
