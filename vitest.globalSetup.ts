/**
 * Before any test runs: build the pi extension if a source is newer than the
 * built file, so that every pi the tests start loads the extension as users
 * get it (the built file), built from the sources under test.
 */
import { buildIfStale } from "./packages/pi/src/internal/piExtension.js"

export default function setup(): void {
  buildIfStale()
}
