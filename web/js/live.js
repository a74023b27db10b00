// What the server pushes: one `/ui/events` stream for the whole app (runs and task instances
// changing, logs growing), handed to the handlers of the page on screen, and one stream per
// open log. Nothing here polls; the browser's EventSource reconnects by itself, and a
// reconnect tells the page to reload once, since events may have been missed meanwhile.

const handlers = new Set();
let source = null;
let wasOpen = false;
let resumeOnShow = false;

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

// A page kept in the back/forward cache would hold its stream open, and a browser allows only
// a few connections per server: close it while the page is hidden, reopen when it is back.
window.addEventListener('pagehide', () => {
  if (!source) return;
  source.close();
  source = null;
  resumeOnShow = true;
});
window.addEventListener('pageshow', (event) => {
  if (resumeOnShow && event.persisted) {
    resumeOnShow = false;
    connect();
  }
});

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
  let stream = null;
  let last = null;
  let ended = false;
  const open = () => {
    const target = new URL(url, location.origin);
    if (last !== null) target.searchParams.set('after', String(last));
    stream = new EventSource(target.pathname + target.search);
    stream.addEventListener('lines', (message) => {
      const lines = JSON.parse(message.data);
      if (lines.length) last = lines[lines.length - 1].seq;
      onLines(lines);
    });
    stream.addEventListener('end', () => {
      ended = true;
      close();
      if (onEnd) onEnd();
    });
    stream.addEventListener('error', () => {
      // EventSource retries on its own (resuming after the last line); a closed stream
      // (a 4xx) reports once.
      if (stream && stream.readyState === EventSource.CLOSED && onError) onError();
    });
  };
  const close = () => {
    if (stream) stream.close();
    stream = null;
  };
  // Like the app's stream: closed while the page sits in the back/forward cache.
  const hide = () => close();
  const show = (event) => {
    if (event.persisted && !ended && !stream) open();
  };
  window.addEventListener('pagehide', hide);
  window.addEventListener('pageshow', show);
  open();
  return () => {
    ended = true;
    close();
    window.removeEventListener('pagehide', hide);
    window.removeEventListener('pageshow', show);
  };
}
