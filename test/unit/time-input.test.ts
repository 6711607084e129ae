import { describe, expect, it } from "vitest";
import { inSchedule } from "../../common/schedule.js";
import { parseDuration, parseInstant, parseSchedule, wallToUnixMs } from "../../common/time-input.js";

const utc = (iso: string) => Date.parse(iso);

describe("parseInstant", () => {
  it("reads ISO 8601 with Z or an offset as that instant and reports the offset as the zone", () => {
    expect(parseInstant("2006-01-26T21:00:00Z", "Asia/Tokyo")).toEqual({
      unix: 1138309200,
      zone: "UTC",
      utc: "2006-01-26T21:00:00Z",
    });
    expect(parseInstant("2006-01-26T21:00:00+01:00", "Asia/Tokyo")).toEqual({
      unix: 1138305600,
      zone: "+01:00",
      utc: "2006-01-26T20:00:00Z",
    });
    expect(parseInstant("2006-01-26 21:00-0530", "UTC")).toEqual({
      unix: 1138329000,
      zone: "-05:30",
      utc: "2006-01-27T02:30:00Z",
    });
  });

  it("reads ISO 8601 without a zone as wall time in the given zone, DST included", () => {
    expect(parseInstant("2006-01-26T21:00:00", "Europe/Berlin")).toEqual({
      unix: 1138305600,
      zone: "Europe/Berlin",
      utc: "2006-01-26T20:00:00Z",
    });
    // Summer time: UTC+2.
    expect(parseInstant("2006-07-26T21:00", "Europe/Berlin").utc).toBe("2006-07-26T19:00:00Z");
    expect(parseInstant("2006-07-26", "America/New_York").utc).toBe("2006-07-26T04:00:00Z");
  });

  it("reads the compact local form YYYYMMDDhhmmss in the given zone", () => {
    expect(parseInstant("20060126210000", "Asia/Tokyo")).toEqual({
      unix: 1138276800,
      zone: "Asia/Tokyo",
      utc: "2006-01-26T12:00:00Z",
    });
    expect(parseInstant("20060126210000", "UTC").utc).toBe("2006-01-26T21:00:00Z");
  });

  it("refuses a wall time inside a DST gap, naming the value and the zone", () => {
    // Europe/Berlin skipped 02:00-03:00 on 2024-03-31.
    expect(() => parseInstant("20240331023000", "Europe/Berlin")).toThrow(
      '"20240331023000" does not exist in Europe/Berlin (skipped by a DST change)',
    );
    expect(parseInstant("20240331030000", "Europe/Berlin").utc).toBe("2024-03-31T01:00:00Z");
  });

  it("takes the earlier instant for a wall time that a DST overlap repeats", () => {
    // Europe/Berlin ran 02:00-03:00 twice on 2024-10-27: first at UTC+2, then at UTC+1.
    expect(parseInstant("2024-10-27T02:30:00", "Europe/Berlin").utc).toBe("2024-10-27T00:30:00Z");
    expect(
      wallToUnixMs({ year: 2024, month: 10, day: 27, hour: 3, minute: 0, second: 0 }, "Europe/Berlin", "x"),
    ).toBe(utc("2024-10-27T02:00:00Z"));
  });

  it("reads now, +DURATION and -DURATION relative to the given now, in whole seconds", () => {
    const now = utc("2026-11-25T08:59:30.750Z");
    expect(parseInstant("now", "Europe/Berlin", now)).toEqual({
      unix: utc("2026-11-25T08:59:30Z") / 1000,
      zone: "UTC",
      utc: "2026-11-25T08:59:30Z",
    });
    expect(parseInstant("+1h", "Europe/Berlin", now).utc).toBe("2026-11-25T09:59:30Z");
    expect(parseInstant(" +1d1h30m ", "UTC", now).utc).toBe("2026-11-26T10:29:30Z");
    expect(parseInstant("-30m", "UTC", now).utc).toBe("2026-11-25T08:29:30Z");
    // Without a given now, the wall clock's.
    const before = Math.floor(Date.now() / 1000);
    const got = parseInstant("+2h", "UTC").unix;
    expect(got).toBeGreaterThanOrEqual(before + 7200);
    expect(got).toBeLessThanOrEqual(Math.floor(Date.now() / 1000) + 7200);
  });

  it("refuses a relative time that is not a duration or lands before 1970", () => {
    const now = utc("2026-11-25T09:00:00Z");
    expect(() => parseInstant("+tomorrow", "UTC", now)).toThrow(/"tomorrow" is not a duration/);
    expect(() => parseInstant("+", "UTC", now)).toThrow(/is not a duration/);
    expect(() => parseInstant("+1h-", "UTC", now)).toThrow(/is not a duration/);
    expect(() => parseInstant("+0s", "UTC", now)).toThrow(/must be between/);
    expect(() => parseInstant("-30000d", "UTC", now)).toThrow(/"-30000d" is before 1970/);
    expect(() => parseInstant("nowish", "UTC", now)).toThrow(/"nowish" is not a date/);
  });

  it("refuses malformed dates, impossible calendar values and unknown zones with the value named", () => {
    expect(() => parseInstant("tomorrow", "UTC")).toThrow(/"tomorrow" is not a date/);
    expect(() => parseInstant("2006-02-30T10:00:00", "UTC")).toThrow(
      '"2006-02-30T10:00:00" is not a valid date and time',
    );
    expect(() => parseInstant("20061301000000", "UTC")).toThrow(/is not a valid date and time/);
    expect(() => parseInstant("2006-01-26T24:00:00Z", "UTC")).toThrow(/is not a valid date and time/);
    expect(() => parseInstant("2006-01-26T10:00:00", "Mars/Olympus")).toThrow(
      'unknown time zone "Mars/Olympus"',
    );
    expect(() => parseInstant("2006-01-26T10:00:00+25:00", "UTC")).toThrow(/bad UTC offset "\+25:00"/);
  });
});

describe("parseDuration", () => {
  it("reads seconds, minutes, hours, days and combinations", () => {
    expect(parseDuration("90s")).toBe(90);
    expect(parseDuration("30m")).toBe(1800);
    expect(parseDuration("2h")).toBe(7200);
    expect(parseDuration("1d")).toBe(86_400);
    expect(parseDuration("1h30m")).toBe(5400);
  });

  it("refuses a bare number, unknown units, zero and too long", () => {
    expect(() => parseDuration("30")).toThrow('"30" is not a duration');
    expect(() => parseDuration("3w")).toThrow('"3w" is not a duration');
    expect(() => parseDuration("0m")).toThrow('duration "0m" must be between 1 and 31536000 seconds');
    expect(() => parseDuration("400d")).toThrow(/must be between/);
  });
});

describe("parseSchedule", () => {
  it("reads day ranges, lists, wrapping ranges and daily into ISO weekdays", () => {
    expect(parseSchedule("Mon-Fri 08:00-18:00")).toEqual({
      days: [1, 2, 3, 4, 5],
      start: "08:00",
      end: "18:00",
    });
    expect(parseSchedule("sat,Sun 10:00-14:00")).toEqual({ days: [6, 7], start: "10:00", end: "14:00" });
    expect(parseSchedule("Fri-Mon 22:00-06:00")).toEqual({
      days: [1, 5, 6, 7],
      start: "22:00",
      end: "06:00",
    });
    expect(parseSchedule("Mon,Wed-Thu 00:00-24:00")).toEqual({
      days: [1, 3, 4],
      start: "00:00",
      end: "24:00",
    });
    expect(parseSchedule("daily 07:00-07:30")).toEqual({
      days: [1, 2, 3, 4, 5, 6, 7],
      start: "07:00",
      end: "07:30",
    });
  });

  it("refuses unknown days, bad times and a missing part, naming what is wrong", () => {
    expect(() => parseSchedule("Mon-Fry 08:00-18:00")).toThrow('"Fry" is not a day (Mon..Sun)');
    expect(() => parseSchedule("Mon 8:00-18:00")).toThrow(/use DAYS HH:MM-HH:MM/);
    expect(() => parseSchedule("Mon 08:00-25:00")).toThrow('bad end time "25:00"');
    expect(() => parseSchedule("Mon 24:00-23:00")).toThrow('bad start time "24:00"');
    expect(() => parseSchedule("Mon--Fri 08:00-09:00")).toThrow(/bad day list/);
    expect(() => parseSchedule("08:00-18:00")).toThrow(/use DAYS/);
  });
});

describe("schedules read from the command line, judged by the one evaluator", () => {
  const office = [parseSchedule("Mon-Fri 08:00-18:00")];

  it("opens inside the window in the target's zone and not outside it (start inclusive, end exclusive)", () => {
    // 2024-07-01 is a Monday; Berlin is UTC+2 in July.
    expect(inSchedule(office, utc("2024-07-01T06:00:00Z"), "Europe/Berlin")).toBe(true);
    expect(inSchedule(office, utc("2024-07-01T05:59:59Z"), "Europe/Berlin")).toBe(false);
    expect(inSchedule(office, utc("2024-07-01T16:00:00Z"), "Europe/Berlin")).toBe(false);
    expect(inSchedule(office, utc("2024-07-01T06:00:00Z"), "UTC")).toBe(false);
    // Saturday.
    expect(inSchedule(office, utc("2024-07-06T10:00:00Z"), "Europe/Berlin")).toBe(false);
  });

  it("lets a window past midnight run into the next day and belong to the day it starts", () => {
    const night = [parseSchedule("Fri 22:00-06:00")];
    expect(inSchedule(night, utc("2024-07-05T23:00:00Z"), "UTC")).toBe(true); // Fri 23:00
    expect(inSchedule(night, utc("2024-07-06T05:59:00Z"), "UTC")).toBe(true); // Sat 05:59
    expect(inSchedule(night, utc("2024-07-06T06:00:00Z"), "UTC")).toBe(false);
    expect(inSchedule(night, utc("2024-07-05T05:00:00Z"), "UTC")).toBe(false); // Fri 05:00 (Thu's night)
  });

  it("follows the wall clock across a DST change", () => {
    const morning = [parseSchedule("daily 08:00-09:00")];
    // 08:30 Berlin: UTC+1 in winter, UTC+2 in summer.
    expect(inSchedule(morning, utc("2024-03-30T07:30:00Z"), "Europe/Berlin")).toBe(true);
    expect(inSchedule(morning, utc("2024-03-31T06:30:00Z"), "Europe/Berlin")).toBe(true);
    expect(inSchedule(morning, utc("2024-03-31T07:30:00Z"), "Europe/Berlin")).toBe(false);
  });
});
