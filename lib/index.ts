// The package's main entry (`offline-detector`, also `offline-detector/cdk`): the construct and its props, its
// dashboard, and the ready stack. A consumer that only reads events imports `offline-detector/events` (no CDK).
export { type AlarmOptions, OfflineDetectorDashboard, type OfflineDetectorDashboardProps } from './dashboard.js';
export {
  type DeviceTypeOptions,
  type FlapDampingOptions,
  type KinesisIngestOptions,
  OfflineDetector,
  type OfflineDetectorProps,
  type OutageDetectionOptions,
  type SqsIngestOptions,
} from './offline-detector.js';
export { OfflineDetectorStack, type OfflineDetectorStackProps } from './offline-detector-stack.js';
