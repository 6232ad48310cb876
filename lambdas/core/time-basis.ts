/** The time a message counts as seen: when it entered our pipeline (SQS SentTimestamp, Kinesis arrival time), or
 * the device's own timestamp when it is within `skewMs` of that. Never the processing clock, so a backlog in our
 * own pipeline cannot make a device look silent. */
export function seenAt(enteredAt: number, deviceTs: number | undefined, skewMs: number): number {
  if (skewMs > 0 && deviceTs !== undefined && Math.abs(deviceTs - enteredAt) <= skewMs) return deviceTs;
  return enteredAt;
}
