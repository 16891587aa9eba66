import { heading } from '../lib.js';

export async function render(main) {
  main.replaceChildren(heading('library'));
}
