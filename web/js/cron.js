// A schedule in words: Airflow's presets and the common shapes of five-field cron
// expressions ("At 06:00, Monday through Friday"); anything else is shown as written.

const PRESETS = {
  '@once': 'Once',
  '@continuous': 'Continuously',
  '@hourly': 'Every hour',
  '@daily': 'Every day at 00:00',
  '@midnight': 'Every day at 00:00',
  '@weekly': 'Every Sunday at 00:00',
  '@monthly': 'On day 1 of every month at 00:00',
  '@quarterly': 'On day 1 of every quarter at 00:00',
  '@yearly': 'Every year on January 1 at 00:00',
  '@annually': 'Every year on January 1 at 00:00',
};

const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday', 'Sunday'];
const MONTHS = ['', 'January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];
const DAY_NAMES = { SUN: 0, MON: 1, TUE: 2, WED: 3, THU: 4, FRI: 5, SAT: 6 };

const isNum = (s) => /^\d+$/.test(s);
const pad = (n) => String(n).padStart(2, '0');

function dayName(token) {
  const upper = token.toUpperCase();
  if (upper in DAY_NAMES) return DAYS[DAY_NAMES[upper]];
  return isNum(token) ? DAYS[Number(token)] : token;
}

function list(field, name) {
  return field.split(',').map((part) => {
    const [a, b] = part.split('-');
    return b !== undefined ? `${name(a)} through ${name(b)}` : name(a);
  }).join(', ');
}

function timeOfDay(minute, hour) {
  if (isNum(minute) && isNum(hour)) return `At ${pad(hour)}:${pad(minute)}`;
  if (isNum(minute) && hour.includes(',') && hour.split(',').every(isNum)) {
    return `At ${hour.split(',').map((hh) => `${pad(hh)}:${pad(minute)}`).join(', ')}`;
  }
  if (minute === '*' && hour === '*') return 'Every minute';
  if (/^\*\/\d+$/.test(minute) && hour === '*') return `Every ${minute.slice(2)} minutes`;
  if (isNum(minute) && hour === '*') return Number(minute) === 0 ? 'Every hour' : `At minute ${minute} past every hour`;
  if (isNum(minute) && /^\*\/\d+$/.test(hour)) return `At minute ${minute} past every ${hour.slice(2)} hours`;
  if (/^\*\/\d+$/.test(minute) && isNum(hour)) return `Every ${minute.slice(2)} minutes during hour ${pad(hour)}`;
  if (isNum(minute) && /^\d+-\d+$/.test(hour)) {
    const [a, b] = hour.split('-');
    return `At minute ${minute} past every hour from ${pad(a)}:00 through ${pad(b)}:00`;
  }
  return null;
}

/** The schedule of a DAG (`timetable_summary` of the API) in words, or null for none. */
export function describeSchedule(expr) {
  if (!expr) return null;
  const trimmed = expr.trim();
  if (trimmed in PRESETS) return PRESETS[trimmed];
  const fields = trimmed.split(/\s+/);
  if (fields.length !== 5) return trimmed;
  const [minute, hour, dom, month, dow] = fields;
  const time = timeOfDay(minute, hour);
  if (!time) return trimmed;
  const parts = [time];
  if (dom !== '*' && dom !== '?') parts.push(`on day ${dom.replaceAll(',', ', ')} of the month`);
  if (dow !== '*' && dow !== '?') parts.push(list(dow, dayName));
  if (month !== '*') parts.push(`in ${list(month, (m) => (isNum(m) ? MONTHS[Number(m)] : m))}`);
  if (parts.length === 1 && isNum(minute) && isNum(hour)) parts.push('every day');
  return parts.join(', ');
}
