/** Small DOM helpers shared by the views (text only: nothing is parsed as HTML). */

/** An element with a class and, optionally, its text. */
export function el(tag: string, className: string, text?: string): HTMLElement {
  const e = document.createElement(tag);
  if (className) {
    e.className = className;
  }
  if (text !== undefined) {
    e.textContent = text;
  }
  return e;
}

/** Sets a node's text only when it changed (readings arrive every second). */
export function setText(node: HTMLElement | null, text: string): void {
  if (node && node.textContent !== text) {
    node.textContent = text;
  }
}

/** Text whose `backticked` parts are code: nodes to append (never parsed as HTML). */
export function withCode(text: string): Node[] {
  return text.split('`').map((part, i) => {
    if (i % 2 === 0) {
      return document.createTextNode(part);
    }
    const code = document.createElement('code');
    code.textContent = part;
    return code;
  });
}
