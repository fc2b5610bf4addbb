export type {
  AppendOperation,
  CasOperation,
  CheckFailure,
  CheckOptions,
  CheckResult,
  GetOperation,
  KvOperation,
  ListOperation,
  PutOperation,
  ReadListOperation,
  RegisterOperation,
} from './history.ts';
export { checkKvHistory } from './check.ts';
export { describeOperation, formatHistory } from './format.ts';
export { seededRandom, simulateKvHistory } from './simulate.ts';
export type { SimulationOptions } from './simulate.ts';
