/**
 * Conversion of the PartitionService messages of cross-partition transactions (node.proto:
 * PrepareTransaction, ResolveTransaction, BeginTransaction, DecideTransaction) for both ends.
 */
import { create } from '@bufbuild/protobuf';
import type * as model from '@shoal/model';
import {
  BeginTransactionRequestSchema,
  DecideTransactionRequestSchema,
  ForgetTransactionRequestSchema,
  PrepareTransactionRequestSchema,
  ResolveTransactionRequestSchema,
  TransactionState as WireTransactionState,
  TransactionStateResponseSchema,
} from './gen/shoal/v1/node_pb.ts';
import type {
  BeginTransactionRequest,
  DecideTransactionRequest,
  ForgetTransactionRequest,
  PartitionTarget,
  PrepareTransactionRequest,
  ResolveTransactionRequest,
  TransactionRef as WireTransactionRef,
  TransactionStateResponse,
} from './gen/shoal/v1/node_pb.ts';
import { RpcError, Status } from './grpc.ts';
import { writeRequestFromWire, writeRequestToWire, type RoutedTo } from './partition-codec.ts';

/** A transaction as its participants know it (the storage's TransactionRef, plain data). */
export interface TransactionRefData {
  id: string;
  coordinator: number;
  deadline: number;
  /** Condition checks only (TransactGetItems): reads that yield to writes. */
  readOnly?: boolean;
}

export type TransactionStateName = 'PENDING' | 'COMMITTED' | 'ABORTED';

const STATES: Record<TransactionStateName, WireTransactionState> = {
  PENDING: WireTransactionState.PENDING,
  COMMITTED: WireTransactionState.COMMITTED,
  ABORTED: WireTransactionState.ABORTED,
};

function invalid(what: string): RpcError {
  return new RpcError(Status.INVALID_ARGUMENT, `invalid transaction request: ${what}`);
}

function target(wire: PartitionTarget | undefined): RoutedTo {
  if (wire === undefined) throw invalid('target partition missing');
  return { partitionId: wire.partitionId, epoch: wire.epoch };
}

function stateFromWire(state: WireTransactionState): TransactionStateName {
  for (const [name, value] of Object.entries(STATES)) if (value === state) return name as TransactionStateName;
  throw invalid(`transaction state ${state}`);
}

function transactionId(id: string): string {
  if (!/^[0-9a-f]{1,64}$/.test(id)) throw invalid(`transaction id ${JSON.stringify(id)}`);
  return id;
}

function refToWire(ref: TransactionRefData) {
  return { id: ref.id, coordinatorPartitionId: BigInt(ref.coordinator), deadlineMs: BigInt(ref.deadline), readOnly: ref.readOnly === true };
}

function refFromWire(ref: WireTransactionRef | undefined): TransactionRefData {
  if (ref === undefined) throw invalid('transaction missing');
  const data: TransactionRefData = { id: transactionId(ref.id), coordinator: Number(ref.coordinatorPartitionId), deadline: Number(ref.deadlineMs) };
  if (ref.readOnly) data.readOnly = true;
  return data;
}

export function prepareTransactionRequestToWire(to: RoutedTo, transaction: TransactionRefData, write: model.PartitionWrite): PrepareTransactionRequest {
  return create(PrepareTransactionRequestSchema, { write: writeRequestToWire(to, write), transaction: refToWire(transaction) });
}

export function prepareTransactionRequestFromWire(request: PrepareTransactionRequest): { target: RoutedTo; transaction: TransactionRefData; write: model.PartitionWrite } {
  if (request.write === undefined) throw invalid('write missing');
  return { ...writeRequestFromWire(request.write), transaction: refFromWire(request.transaction) };
}

export function resolveTransactionRequestToWire(to: RoutedTo, id: string, commit: boolean): ResolveTransactionRequest {
  return create(ResolveTransactionRequestSchema, { target: to, transactionId: id, commit });
}

export function resolveTransactionRequestFromWire(request: ResolveTransactionRequest): { target: RoutedTo; id: string; commit: boolean } {
  return { target: target(request.target), id: transactionId(request.transactionId), commit: request.commit };
}

export function beginTransactionRequestToWire(to: RoutedTo, transaction: TransactionRefData, participants: number[]): BeginTransactionRequest {
  return create(BeginTransactionRequestSchema, { target: to, transaction: refToWire(transaction), participants: participants.map(BigInt) });
}

export function beginTransactionRequestFromWire(request: BeginTransactionRequest): { target: RoutedTo; transaction: TransactionRefData; participants: number[] } {
  return { target: target(request.target), transaction: refFromWire(request.transaction), participants: request.participants.map(Number) };
}

export function decideTransactionRequestToWire(to: RoutedTo, id: string, decision: 'COMMITTED' | 'ABORTED'): DecideTransactionRequest {
  return create(DecideTransactionRequestSchema, { target: to, transactionId: id, decision: STATES[decision] });
}

export function decideTransactionRequestFromWire(request: DecideTransactionRequest): { target: RoutedTo; id: string; decision: 'COMMITTED' | 'ABORTED' } {
  const decision = stateFromWire(request.decision);
  if (decision === 'PENDING') throw invalid('a transaction cannot be decided PENDING');
  return { target: target(request.target), id: transactionId(request.transactionId), decision };
}

export function forgetTransactionRequestToWire(to: RoutedTo, id: string): ForgetTransactionRequest {
  return create(ForgetTransactionRequestSchema, { target: to, transactionId: id });
}

export function forgetTransactionRequestFromWire(request: ForgetTransactionRequest): { target: RoutedTo; id: string } {
  return { target: target(request.target), id: transactionId(request.transactionId) };
}

export function transactionStateToWire(state: TransactionStateName): TransactionStateResponse {
  return create(TransactionStateResponseSchema, { state: STATES[state] });
}

export function transactionStateFromWire(response: TransactionStateResponse): TransactionStateName {
  return stateFromWire(response.state);
}
