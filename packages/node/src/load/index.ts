export { KeySample, seededRandom, type KeySpan } from './key-sample.ts';
export { SlidingRate } from './rate-window.ts';
export {
  DEFAULT_ADMISSION_LIMITS,
  NodeLoad,
  PartitionLoadTracker,
  indexBacklogThrottled,
  keyRangeThrottled,
  type Access,
  type AdmissionLimits,
  type LoadTrackingOptions,
  type PartitionLoadReport,
} from './partition-load.ts';
export { recordGet, recordIndexEntries, recordRangeRead, recordWrite } from './served.ts';
export { PartitionSizes, type PartitionSizeSource } from './partition-sizes.ts';
