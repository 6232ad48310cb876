// An SQS standard queue in virtual time, with the semantics the detector's fault model needs (AWS documentation;
// ../shared/STACK.md): at-least-once and unordered delivery, a received message invisible until deleted or until its
// visibility timeout ends, a message received more than maxReceiveCount times moved to the dead-letter queue, and
// `ApproximateNumberOfMessages` counting only visible messages.

export interface SqsMessage {
  id: string;
  body: string;
  /** SentTimestamp: when it entered the pipeline. */
  enteredAt: number;
  visibleAt: number;
  receives: number;
}

export class SqsModel {
  /** Messages moved to the dead-letter queue, in order. */
  readonly deadLetters: SqsMessage[] = [];
  private messages: SqsMessage[] = [];

  constructor(
    readonly visibilityTimeoutMs: number,
    readonly maxReceiveCount: number,
  ) {}

  send(id: string, body: string, enteredAt: number, delayMs = 0): void {
    this.messages.push({ id, body, enteredAt, visibleAt: enteredAt + delayMs, receives: 0 });
  }

  /** ApproximateNumberOfMessages: neither in flight nor delayed. */
  visible(now: number): number {
    return this.messages.filter((m) => m.visibleAt <= now).length;
  }

  /** Messages not yet deleted or dead-lettered (visible, in flight or delayed). */
  pending(): readonly SqsMessage[] {
    return this.messages;
  }

  /** One receive: the visible messages the picks select, in the picks' order (a standard queue keeps none). Each
   * becomes invisible for the visibility timeout; one already received maxReceiveCount times goes to the DLQ
   * instead (SQS moves it on the receive that would exceed the count). */
  receive(now: number, picks: readonly number[]): SqsMessage[] {
    const batch: SqsMessage[] = [];
    for (const pick of picks) {
      const visible = this.messages.filter((m) => m.visibleAt <= now);
      const message = visible[pick % Math.max(1, visible.length)];
      if (!message) break;
      if (message.receives >= this.maxReceiveCount) {
        this.messages = this.messages.filter((m) => m !== message);
        this.deadLetters.push(message);
        continue;
      }
      message.receives++;
      message.visibleAt = now + this.visibilityTimeoutMs;
      batch.push(message);
    }
    return batch;
  }

  /** Every visible message, for a poller that catches up. */
  receiveAll(now: number): SqsMessage[] {
    return this.receive(
      now,
      this.messages.filter((m) => m.visibleAt <= now).map(() => 0),
    );
  }

  /** ChangeMessageVisibility: a message in flight becomes visible `delayMs` from `now`. */
  changeVisibility(id: string, now: number, delayMs: number): boolean {
    const message = this.messages.find((m) => m.id === id && m.visibleAt > now);
    if (!message) return false;
    message.visibleAt = now + delayMs;
    return true;
  }

  delete(ids: ReadonlySet<string>): void {
    this.messages = this.messages.filter((m) => !ids.has(m.id));
  }

  /** At-least-once delivery: a message already deleted is delivered again, with the same id and entry time. */
  duplicate(message: Pick<SqsMessage, 'id' | 'body' | 'enteredAt'>, now: number): void {
    if (this.messages.some((m) => m.id === message.id)) return;
    this.messages.push({ ...message, visibleAt: now, receives: 0 });
  }
}
