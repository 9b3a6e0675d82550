// The page's one store: the session as the node's events describe it, updated only by
// `reduce(state, event)` (pure: it returns a new state and never touches the DOM), so what the
// page shows is a function of the events it was sent. Tested with `node --test`.
export const CHAT_KEPT = 200;

export function initial() {
  return { session: null, participants: new Map(), levels: {}, jitter: {}, recording: null,
           lastBeat: null, chat: [], closed: false, refused: null, error: null };
}

function withParticipants(state, change) {
  const participants = new Map(state.participants);
  change(participants);
  return { ...state, participants };
}

export function reduce(state, event) {
  switch (event && event.type) {
    case "session": {
      const s = event.session;
      return { ...state, session: s, recording: s.recording ?? null,
               participants: new Map(s.participants.map((p) => [p.id, p])) };
    }
    case "joined": case "participant":
      return withParticipants(state, (m) => m.set(event.participant.id, { ...m.get(event.participant.id), ...event.participant }));
    case "left":
      return withParticipants(state, (m) => m.delete(event.participant));
    case "moved":
      return withParticipants(state, (m) => {
        const p = m.get(event.participant);
        if (p) m.set(p.id, { ...p, x: event.x, y: event.y });
      });
    case "turned":
      return withParticipants(state, (m) => {
        const p = m.get(event.participant);
        if (p) m.set(p.id, { ...p, yaw_deg: event.yaw_deg, pitch_deg: event.pitch_deg });
      });
    case "levels": return { ...state, levels: event.levels || {}, jitter: event.jitter || {} };
    case "recording": return { ...state, recording: event.recording ?? null };
    case "beat": return { ...state, lastBeat: event.bar_beat };
    case "chat": return { ...state, chat: [...state.chat, { name: event.name, text: event.text }].slice(-CHAT_KEPT) };
    case "closed": return { ...state, closed: true };
    case "refused": return { ...state, refused: event.error };
    case "error": return { ...state, error: event.error };
    default: return state;   // pong, prove and anything newer: not the store's business
  }
}

