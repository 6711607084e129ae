import { describe, expect, it } from "vitest";
import { SparekeyError } from "../../common/errors.js";
import {
  formatWindow,
  inSchedule,
  localWeekMinute,
  nextMinuteBoundary,
  windowContains,
} from "../../common/schedule.js";
import { assertTimeZone, assertZone, formatInstant, offsetMs } from "../../common/time-zone.js";
import type { WeeklyWindow } from "../../schemas/tokens.js";

const utc = (iso: string) => Date.parse(`${iso}Z`);
const MON = 0;
const DAY = 1440;

describe("weekly schedules", () => {
  it("reads the local weekday and time of an instant in the zone", () => {
    // 2030-01-07 is a Monday; Berlin is UTC+1 in winter.
    expect(localWeekMinute(utc("2030-01-07T08:30:30"), "Europe/Berlin")).toBe(MON + 9 * 60 + 30.5);
    // New York is UTC-5: 03:30Z on Monday is still Sunday evening there.
    expect(localWeekMinute(utc("2030-01-07T03:30:00"), "America/New_York")).toBe(6 * DAY + 22 * 60 + 30);
  });

  it("includes the start minute and excludes the end minute of a window", () => {
    const w: WeeklyWindow = { days: [1], start: "09:00", end: "17:00" };
    expect(windowContains(w, 9 * 60 - 1 / 60)).toBe(false);
    expect(windowContains(w, 9 * 60)).toBe(true);
    expect(windowContains(w, 17 * 60 - 1 / 60)).toBe(true);
    expect(windowContains(w, 17 * 60)).toBe(false);
    // Same times on Tuesday: not a listed day.
    expect(windowContains(w, DAY + 12 * 60)).toBe(false);
  });

  it("runs a window whose end is before its start past midnight into the next day only", () => {
    const night: WeeklyWindow = { days: [5], start: "22:00", end: "06:00" };
    const fri = 4 * DAY;
    expect(windowContains(night, fri + 21 * 60 + 59)).toBe(false);
    expect(windowContains(night, fri + 23 * 60)).toBe(true);
    expect(windowContains(night, fri + DAY + 5 * 60 + 59)).toBe(true); // Saturday 05:59
    expect(windowContains(night, fri + DAY + 6 * 60)).toBe(false);
    // Friday 03:00 belongs to Thursday's night, which is not listed.
    expect(windowContains(night, fri + 3 * 60)).toBe(false);
  });

  it("wraps a Sunday night window into Monday morning", () => {
    const w: WeeklyWindow = { days: [7], start: "23:00", end: "01:00" };
    expect(windowContains(w, MON + 30)).toBe(true);
    expect(windowContains(w, MON + 60)).toBe(false);
    expect(windowContains(w, 6 * DAY + 23 * 60 + 30)).toBe(true);
  });

  it("treats 24:00 as the end of the day and an equal start and end as a whole day", () => {
    const evening: WeeklyWindow = { days: [2], start: "18:00", end: "24:00" };
    expect(windowContains(evening, DAY + 23 * 60 + 59.9)).toBe(true);
    expect(windowContains(evening, 2 * DAY)).toBe(false);
    const allDay: WeeklyWindow = { days: [3], start: "00:00", end: "24:00" };
    expect(windowContains(allDay, 2 * DAY)).toBe(true);
    expect(windowContains(allDay, 3 * DAY)).toBe(false);
    const wrapAround: WeeklyWindow = { days: [3], start: "08:00", end: "08:00" };
    expect(windowContains(wrapAround, 3 * DAY + 7 * 60 + 59)).toBe(true);
    expect(windowContains(wrapAround, 3 * DAY + 8 * 60)).toBe(false);
  });

  it("opens when any window opens", () => {
    const windows: WeeklyWindow[] = [
      { days: [1, 2, 3, 4, 5], start: "07:00", end: "09:00" },
      { days: [6], start: "10:00", end: "12:00" },
    ];
    expect(inSchedule(windows, utc("2030-01-12T10:30:00"), "UTC")).toBe(true); // Saturday
    expect(inSchedule(windows, utc("2030-01-12T08:30:00"), "UTC")).toBe(false);
    expect(inSchedule(windows, utc("2030-01-11T08:30:00"), "UTC")).toBe(true); // Friday
  });

  it("follows Berlin's wall clock across the spring-forward night (2030-03-31, 02:00 -> 03:00)", () => {
    const early: WeeklyWindow[] = [{ days: [7], start: "02:30", end: "03:30" }];
    // 01:59 CET is 00:59Z; one minute later the clock reads 03:00 CEST, inside the window.
    expect(inSchedule(early, utc("2030-03-31T00:59:00"), "Europe/Berlin")).toBe(false);
    expect(inSchedule(early, utc("2030-03-31T01:00:00"), "Europe/Berlin")).toBe(true);
    expect(inSchedule(early, utc("2030-03-31T01:30:00"), "Europe/Berlin")).toBe(false); // 03:30 CEST
    const office: WeeklyWindow[] = [{ days: [7], start: "08:00", end: "09:00" }];
    // 08:00 local is 06:00Z after the change (07:00Z a week earlier).
    expect(inSchedule(office, utc("2030-03-31T05:59:00"), "Europe/Berlin")).toBe(false);
    expect(inSchedule(office, utc("2030-03-31T06:00:00"), "Europe/Berlin")).toBe(true);
    expect(inSchedule(office, utc("2030-03-24T06:00:00"), "Europe/Berlin")).toBe(false);
    expect(inSchedule(office, utc("2030-03-24T07:00:00"), "Europe/Berlin")).toBe(true);
  });

  it("keeps the repeated hour of Berlin's fall-back night (2030-10-27) inside the window both times", () => {
    const w: WeeklyWindow[] = [{ days: [7], start: "02:00", end: "03:00" }];
    expect(inSchedule(w, utc("2030-10-26T23:59:00"), "Europe/Berlin")).toBe(false); // 01:59 CEST
    expect(inSchedule(w, utc("2030-10-27T00:30:00"), "Europe/Berlin")).toBe(true); // 02:30 CEST
    expect(inSchedule(w, utc("2030-10-27T01:30:00"), "Europe/Berlin")).toBe(true); // 02:30 CET
    expect(inSchedule(w, utc("2030-10-27T02:00:00"), "Europe/Berlin")).toBe(false); // 03:00 CET
  });

  it("follows New York's wall clock on its DST days (2030-03-10 and 2030-11-03)", () => {
    const morning: WeeklyWindow[] = [{ days: [7], start: "09:00", end: "10:00" }];
    // EDT (UTC-4) from 2030-03-10; EST (UTC-5) again from 2030-11-03.
    expect(inSchedule(morning, utc("2030-03-10T13:00:00"), "America/New_York")).toBe(true);
    expect(inSchedule(morning, utc("2030-03-10T14:00:00"), "America/New_York")).toBe(false);
    expect(inSchedule(morning, utc("2030-11-03T13:30:00"), "America/New_York")).toBe(false);
    expect(inSchedule(morning, utc("2030-11-03T14:00:00"), "America/New_York")).toBe(true);
  });

  it("gives the next whole minute as the next instant a schedule can change", () => {
    expect(nextMinuteBoundary(utc("2030-01-07T08:30:00"))).toBe(utc("2030-01-07T08:31:00"));
    expect(nextMinuteBoundary(utc("2030-01-07T08:30:59") + 999)).toBe(utc("2030-01-07T08:31:00"));
  });

  it("accepts a known IANA zone and refuses an unknown one with an error naming it", () => {
    expect(assertTimeZone("Europe/Berlin")).toBe("Europe/Berlin");
    let caught: unknown;
    try {
      assertTimeZone("Mars/Olympus_Mons");
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(SparekeyError);
    expect(caught).toMatchObject({
      code: "config_invalid",
      message:
        'target config: time_zone "Mars/Olympus_Mons" is not a known IANA time zone (e.g. "Europe/Berlin")',
    });
  });
});

describe("time zones", () => {
  it("gives the UTC offset of a zone at an instant, DST and half hours included", () => {
    expect(offsetMs("Europe/Berlin", utc("2030-01-15T12:00:00"))).toBe(3_600_000);
    expect(offsetMs("Europe/Berlin", utc("2030-07-15T12:00:00"))).toBe(7_200_000);
    expect(offsetMs("America/New_York", utc("2030-01-15T12:00:00"))).toBe(-5 * 3_600_000);
    expect(offsetMs("Asia/Kolkata", utc("2030-01-15T12:00:00"))).toBe(5.5 * 3_600_000);
  });

  it("prints an instant as wall time with its offset, west of UTC and in half-hour zones too", () => {
    expect(formatInstant(utc("2030-01-15T12:00:00") / 1000, "America/New_York")).toBe(
      "2030-01-15 07:00:00 UTC-05:00",
    );
    expect(formatInstant(utc("2030-01-15T12:00:00") / 1000, "Asia/Kolkata")).toBe(
      "2030-01-15 17:30:00 UTC+05:30",
    );
  });

  it("refuses an unknown zone given on the command line as bad_request", () => {
    expect(() => assertZone("Mars/Olympus")).toThrow('unknown time zone "Mars/Olympus"');
  });

  it("writes days as ranges and marks a window that ends the next day", () => {
    expect(formatWindow({ days: [1, 2, 3, 5], start: "08:00", end: "18:00" })).toBe(
      "Mon-Wed,Fri 08:00-18:00",
    );
    expect(formatWindow({ days: [5], start: "22:00", end: "06:00" })).toBe("Fri 22:00-06:00 (ends next day)");
    expect(formatWindow({ days: [6, 7], start: "00:00", end: "24:00" })).toBe("Sat,Sun 00:00-24:00");
  });
});
