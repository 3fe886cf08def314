// Keeping every process's caches current (docs/architecture.md, "Propagation"): the one module
// writes, caches and the composition root use. Its SQL is in store/changes.ts and its Postgres
// connection in db/change-feed.ts; nothing else imports those.
export type { Change } from './changes.ts';
export { Propagation, type ChangeSource, type ChangeSubscriber } from './process.ts';
export { writeAndPropagate, writeAndPublish, type Changes } from './write.ts';
