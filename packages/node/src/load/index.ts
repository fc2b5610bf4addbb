export { KeySample, seededRandom, type KeySpan } from './key-sample.ts';
export { SlidingRate } from './rate-window.ts';
export {
  DEFAULT_ADMISSION_LIMITS,
  NodeLoad,
  PartitionLoadTracker,
  keyRangeThrottled,
  type Access,
  type AdmissionLimits,
  type LoadTrackingOptions,
  type PartitionLoadReport,
} from './partition-load.ts';
export { recordGet, recordRangeRead, recordWrite } from './served.ts';
export { PartitionSizes, type PartitionSizeSource } from './partition-sizes.ts';
