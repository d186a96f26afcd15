// The module images.ts loads for `image-build --wait`; the waiter lives with image-upload in
// image-progress.ts (builder side).
export { waitForImageBuild } from './image-progress.js';
