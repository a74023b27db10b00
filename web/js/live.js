// What the server pushes: one `/ui/events` stream for the whole app (runs and task instances
// changing, logs growing), handed to the handlers of the page on screen, and one stream per
// open log. Nothing here polls; the browser's EventSource reconnects by itself, and a
// reconnect tells the page to reload once, since events may have been missed meanwhile.

const handlers = new Set();
let source = null;
let wasOpen = false;

function dispatch(event) {
  for (const handler of [...handlers]) {
    try {
      handler(event);
    } catch (err) {
      console.error('page event handler failed', err);
    }
  }
}

/** Start the app's event stream (after login). */
export function connect() {
  if (source) return;
  source = new EventSource('/ui/events');
  source.addEventListener('open', () => {
    document.documentElement.dataset.live = 'on';
    if (wasOpen) dispatch({ type: 'resync' });
    wasOpen = true;
  });
  source.addEventListener('error', () => {
    document.documentElement.dataset.live = 'off';
  });
  for (const type of ['run', 'log', 'resync']) {
    source.addEventListener(type, (message) => {
      let data = {};
      try {
        data = JSON.parse(message.data);
      } catch {
        data = { type: 'resync' };
      }
      dispatch(data);
    });
  }
}

export function disconnect() {
  if (source) source.close();
  source = null;
  wasOpen = false;
}

/** Call `handler` with every page event until the returned function is called. */
export function subscribe(handler) {
  handlers.add(handler);
  return () => handlers.delete(handler);
}

/**
 * Follow one try's log from sequence number `after`: `onLines(lines)` for each batch, then
 * `onEnd()` once the try is over. Returns a function that closes the stream.
 */
export function followLog(url, { onLines, onEnd, onError }) {
  const stream = new EventSource(url);
  stream.addEventListener('lines', (message) => onLines(JSON.parse(message.data)));
  stream.addEventListener('end', () => {
    stream.close();
    if (onEnd) onEnd();
  });
  stream.addEventListener('error', () => {
    // EventSource retries on its own; a closed stream (4xx) reports once.
    if (stream.readyState === EventSource.CLOSED && onError) onError();
  });
  return () => stream.close();
}
