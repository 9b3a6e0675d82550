// The AI bandmate panel (owner only): the session's chords, instrument, density, add/remove.
import { $, api, setSession, showError, state } from "./app.js";

{
  const path = () => `/api/sessions/${state.session.id}/bandmate`;
  let bandmate = null;

  function onSession(session) {
    bandmate = session.bandmate;
    const chords = $("#chords");
    if (document.activeElement !== chords) chords.value = session.chords || "";
    $("#ai-toggle").textContent = bandmate ? "Remove bandmate" : "Add bandmate";
    const work = $("#ai-status").dataset.work;
    $("#ai-status").textContent = bandmate
      ? `playing ${bandmate.instrument}, density ${bandmate.density}` +
        (work ? ` over work ${work}'s harmony (${session.key}: ${session.chords})` : "") : "";
    if (!bandmate) delete $("#ai-status").dataset.work;
    if (bandmate) {
      $("#ai-instrument").value = bandmate.instrument;
      $("#ai-density").value = bandmate.density;
    }
  }

  $("#chords").onchange = (ev) =>
    api("PATCH", `/api/sessions/${state.session.id}`, { chords: ev.target.value.trim() || null }, true)
      .then(setSession).catch(showError);

  $("#ai-toggle").onclick = async () => {
    try {
      if (bandmate) {
        await api("DELETE", path(), null, true);
      } else {
        const body = {
          instrument: $("#ai-instrument").value, density: Number($("#ai-density").value), x: 0, y: 4,
        };
        const work = $("#ai-work").value.trim();
        if (work) body.seed_work = Number(work);  // over the work's harmony; takes derive from it
        const added = await api("POST", path(), body, true);
        if (added.seed_work !== undefined) {
          $("#ai-work").value = "";
          $("#ai-status").dataset.work = String(added.seed_work);
        }
      }
      // The reply and the session event race each other: read the session back once.
      setSession(await api("GET", `/api/sessions/${state.session.id}`));
      showError("");
    } catch (e) { showError(e); }
  };

  const update = () => {
    if (!bandmate) return;
    api("PATCH", path(), {
      instrument: $("#ai-instrument").value, density: Number($("#ai-density").value),
    }, true).catch(showError);
  };
  $("#ai-instrument").onchange = update;
  $("#ai-density").onchange = update;

  window.jamnetAi = { onSession };
}
