// The virtual clock the simulations and test harnesses hand the handlers and cores as `now`: time moves only when
// the driver moves it, so a run of hours takes what its work takes, and the same seed gives the same run.
export class VirtualClock {
  /** Added to the time after each read, so that a budget measured by the clock runs out (0: time stands still). */
  step = 0;

  constructor(
    /** The time (epoch ms); the driver sets or advances it. */
    public t: number,
  ) {}

  /** The time, then `step` later for the next read. */
  readonly now = (): number => {
    const t = this.t;
    this.t += this.step;
    return t;
  };
}
