// The one place that loads the generated napi-rs binding. Its loader is
// CommonJS (it picks the prebuilt platform package or the local .node), so
// the ESM build reaches it through createRequire.
import { createRequire } from 'node:module';
import type * as Binding from '../index.cjs';

const requireBinding = createRequire(import.meta.url);

export const { NativeWal, NativeLeaseStore, NativeSpawner, NativeLane, reportLayout, SimDisk, createRunLock, runLockHeld, runLockHeldFd, inspectStore, appendCityEvent, latestCityEventSeq, socketPeerUid, trimRunOutput } = requireBinding('../index.cjs') as typeof Binding;
export type NativeWal = Binding.NativeWal;
export type NativeLeaseStore = Binding.NativeLeaseStore;
export type SimDisk = Binding.SimDisk;
export type NativeSpawner = Binding.NativeSpawner;
export type NativeLane = Binding.NativeLane;
export type JsArmed = Binding.JsArmed;
export type JsLaneBatch = Binding.JsLaneBatch;
