// Device tags: a few short labels taken from a device's messages through the field map (`site`, `gatewayId`,
// `customer`), stored on the device item, shown by the API and carried on events as SNS message attributes
// (`tag.<name>`), so that subscriptions, maintenance windows and outage groups can select by them.

/** Tag names: short identifiers, so that `tag.<name>` is a valid SNS message attribute name. */
export const TAG_NAME_PATTERN = /^[A-Za-z][A-Za-z0-9_-]{0,31}$/;
/** Tag values: the device-id alphabet ('#' excluded, so a value can be part of a key), at most 64 characters. */
export const TAG_VALUE_PATTERN = /^[A-Za-z0-9._:@/-]{1,64}$/;
/** SNS allows 10 message attributes; events carry `type`, `deviceType`, `cause` and `parentId` besides the tags. */
export const MAX_TAGS = 5;

export type Tags = Readonly<Record<string, string>>;

/** A tag value read from a message: a string or a finite number, within TAG_VALUE_PATTERN; else undefined. */
export function tagValue(raw: unknown): string | undefined {
  const value = typeof raw === 'number' && Number.isFinite(raw) ? String(raw) : raw;
  return typeof value === 'string' && TAG_VALUE_PATTERN.test(value) ? value : undefined;
}

export function sameTags(a: Tags | undefined, b: Tags | undefined): boolean {
  const aKeys = Object.keys(a ?? {});
  if (aKeys.length !== Object.keys(b ?? {}).length) return false;
  return aKeys.every((key) => a![key] === b?.[key]);
}

/** The message attribute name of a tag. */
export function tagAttribute(name: string): string {
  return `tag.${name}`;
}
