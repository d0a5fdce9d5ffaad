// dialog-kit.jsx: what every dialog of the UI does with the keyboard (the
// Migrate dialog, the VM's Delete confirmation, the Clone form): the focus
// goes into it as it shows, Tab and Shift+Tab go round its own controls
// only, Escape closes it, and the focus goes back to the button that
// opened it when it closes.
import { useLayoutEffect, useRef } from 'preact/hooks';

const FOCUSABLE = 'a[href], button:not([disabled]), input:not([disabled]), select:not([disabled]), '
  + 'textarea:not([disabled]), [tabindex]:not([tabindex="-1"])';

// Its controls that take the focus, in document order.
const focusables = (el) => [...el.querySelectorAll(FOCUSABLE)].filter((c) => c.offsetParent !== null);

// The dialogs open now, the last opened last.
const open = [];

// Answers the ref to put on the dialog's element and the handler for its
// onKeyDown. first: a ref of the control to focus first (else its first).
// A layout effect: the focus moves in the same task as the dialog's
// insertion, so no key pressed once it shows reaches the page behind it.
export function useDialog(onClose, first = null) {
  const box = useRef(null);
  const close = useRef(onClose);
  close.current = onClose;
  useLayoutEffect(() => {
    const opener = document.activeElement;
    const el = box.current;
    const start = (first && first.current) || (el && focusables(el)[0]);
    if (start) start.focus();
    // A control that had the focus disabled (the submit button while the
    // request is out) or removed leaves it on the page's body, where the
    // dialog's own onKeyDown hears nothing: the last dialog opened takes
    // those keys, so Escape still closes it and Tab goes back into it.
    open.push(el);
    const lost = (e) => {
      if (open[open.length - 1] === el && (e.target === document.body || e.target === document.documentElement))
        onKeyDown(e);
    };
    document.addEventListener('keydown', lost);
    return () => {
      document.removeEventListener('keydown', lost);
      open.splice(open.indexOf(el), 1);
      // Back to the opener, unless the focus went elsewhere on purpose.
      const now = document.activeElement;
      if (opener && opener.isConnected && opener.focus
          && (!now || now === document.body || (el && el.contains(now))))
        opener.focus();
    };
  }, []);

  function onKeyDown(e) {
    if (e.key === 'Escape') {
      e.preventDefault();
      e.stopPropagation();
      close.current();
      return;
    }
    if (e.key !== 'Tab' || !box.current) return;
    const all = focusables(box.current);
    if (!all.length) return;
    const at = all.indexOf(document.activeElement);
    if (e.shiftKey && at <= 0) {
      e.preventDefault();
      all[all.length - 1].focus();
    } else if (!e.shiftKey && (at === -1 || at === all.length - 1)) {
      e.preventDefault();
      all[0].focus();
    }
  }
  return { ref: box, onKeyDown };
}

// A dialog element (a form with onSubmit, else a div) with the above:
// <Dialog onClose={...} role="alertdialog" class="confirm">...</Dialog>.
export function Dialog({ onClose, onSubmit, children, ...attrs }) {
  const dialog = useDialog(onClose);
  const Tag = onSubmit ? 'form' : 'div';
  return (
    <Tag role="dialog" {...attrs} onSubmit={onSubmit} ref={dialog.ref} onKeyDown={dialog.onKeyDown}>
      {children}
    </Tag>
  );
}
