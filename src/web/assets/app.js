// Follows a running session's transcript: the server sends each batch of new lines,
// already rendered, and says when the session ends.
(function () {
  const transcript = document.getElementById("transcript");
  if (!transcript || !transcript.dataset.live) return;
  const url = transcript.dataset.live + "?after=" + encodeURIComponent(transcript.dataset.after || "0");
  const source = new EventSource(url);
  source.addEventListener("lines", function (e) {
    const atBottom = window.innerHeight + window.scrollY >= document.body.scrollHeight - 40;
    transcript.insertAdjacentHTML("beforeend", e.data);
    if (e.lastEventId) transcript.dataset.after = e.lastEventId;
    if (atBottom) window.scrollTo(0, document.body.scrollHeight);
  });
  source.addEventListener("ended", function (e) {
    source.close();
    const status = document.getElementById("status");
    if (status) {
      const badge = document.createElement("span");
      badge.className = "badge " + e.data;
      badge.textContent = e.data;
      status.replaceChildren(badge);
    }
  });
})();
