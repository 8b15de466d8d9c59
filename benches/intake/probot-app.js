// The minimal Probot app the intake benchmark compares foreman with: it acknowledges
// `issues.labeled` and stores nothing.
module.exports = (app) => {
  app.on("issues.labeled", () => {});
};
