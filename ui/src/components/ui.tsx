import type { ComponentChildren, Ref } from 'preact';
import { useEffect, useId, useRef, useState } from 'preact/hooks';
import { ApiError } from '../api.js';
import { fromNow, when } from '../format.js';

/**
 * A modal on the native <dialog>: the browser traps focus inside it, closes it on Escape and
 * makes the rest of the page inert. Focus returns to what opened it.
 */
export function Dialog(props: { title: string; onClose: () => void; children: ComponentChildren; wide?: boolean; alert?: boolean }) {
  const ref = useRef<HTMLDialogElement>(null);
  const titleId = useId();
  useEffect(() => {
    const dialog = ref.current!;
    const opener = document.activeElement instanceof HTMLElement ? document.activeElement : null;
    dialog.showModal();
    return () => {
      if (dialog.open) dialog.close();
      if (opener?.isConnected) opener.focus();
    };
  }, []);
  return (
    <dialog
      ref={ref}
      class={props.wide ? 'wide' : undefined}
      role={props.alert ? 'alertdialog' : undefined}
      aria-labelledby={titleId}
      onCancel={(e) => {
        e.preventDefault();
        props.onClose();
      }}
    >
      <h2 id={titleId}>{props.title}</h2>
      {props.children}
    </dialog>
  );
}

export interface FieldProps {
  id: string;
  label: string;
  hint?: ComponentChildren;
  error?: string;
}

/** Label, hint and error wired to the control through aria-describedby, so screen readers read all three. */
export function Field(props: FieldProps & { children: (describedBy: string | undefined, invalid: boolean) => ComponentChildren }) {
  const hintId = props.hint ? `${props.id}-hint` : undefined;
  const errorId = props.error ? `${props.id}-error` : undefined;
  const describedBy = [errorId, hintId].filter(Boolean).join(' ') || undefined;
  return (
    <div class={`field${props.error ? ' has-error' : ''}`}>
      <label for={props.id}>{props.label}</label>
      {props.children(describedBy, !!props.error)}
      {props.hint && (
        <p class="hint" id={hintId}>
          {props.hint}
        </p>
      )}
      {props.error && (
        <p class="error" id={errorId}>
          {props.error}
        </p>
      )}
    </div>
  );
}

export function TextField(
  props: FieldProps & {
    value: string;
    onInput: (value: string) => void;
    type?: string;
    required?: boolean;
    placeholder?: string;
    autoComplete?: string;
    inputRef?: Ref<HTMLInputElement>;
    spellcheck?: boolean;
    /** In a dialog, showModal() moves focus here. */
    autoFocus?: boolean;
  },
) {
  return (
    <Field {...props}>
      {(describedBy, invalid) => (
        <input
          id={props.id}
          ref={props.inputRef}
          type={props.type ?? 'text'}
          value={props.value}
          required={props.required}
          placeholder={props.placeholder}
          autoComplete={props.autoComplete ?? 'off'}
          spellcheck={props.spellcheck ?? false}
          autoFocus={props.autoFocus}
          aria-invalid={invalid ? 'true' : undefined}
          aria-describedby={describedBy}
          onInput={(e) => props.onInput(e.currentTarget.value)}
        />
      )}
    </Field>
  );
}

/** A group of checkboxes in a fieldset with a legend: how a screen reader expects a multi-choice. */
export function CheckboxGroup(props: {
  id: string;
  legend: string;
  options: { value: string; label: ComponentChildren; description?: string }[];
  selected: string[];
  onChange: (selected: string[]) => void;
  hint?: ComponentChildren;
  error?: string;
  empty?: ComponentChildren;
}) {
  const errorId = props.error ? `${props.id}-error` : undefined;
  const hintId = props.hint ? `${props.id}-hint` : undefined;
  return (
    <fieldset
      id={props.id}
      class={`field checkbox-group${props.error ? ' has-error' : ''}`}
      aria-describedby={[errorId, hintId].filter(Boolean).join(' ') || undefined}
      tabIndex={-1}
    >
      <legend>{props.legend}</legend>
      {props.options.length === 0 && <p class="hint">{props.empty}</p>}
      <div class="checkboxes">
        {props.options.map((o) => (
          <label key={o.value} class="checkbox" title={o.description}>
            <input
              type="checkbox"
              value={o.value}
              checked={props.selected.includes(o.value)}
              onChange={(e) =>
                props.onChange(
                  e.currentTarget.checked ? [...props.selected, o.value] : props.selected.filter((s) => s !== o.value),
                )
              }
            />
            <span>{o.label}</span>
          </label>
        ))}
      </div>
      {props.hint && (
        <p class="hint" id={hintId}>
          {props.hint}
        </p>
      )}
      {props.error && (
        <p class="error" id={errorId}>
          {props.error}
        </p>
      )}
    </fieldset>
  );
}

export function Time(props: { iso: string | null | undefined; fallback?: string }) {
  if (!props.iso) return <span class="muted">{props.fallback ?? '—'}</span>;
  return (
    <time dateTime={props.iso} title={when(props.iso)}>
      {fromNow(props.iso)}
    </time>
  );
}

export function Chips(props: { values: string[]; empty?: string }) {
  if (!props.values.length) return <span class="muted">{props.empty ?? 'none'}</span>;
  return (
    <ul class="chips">
      {props.values.map((v) => (
        <li key={v}>{v}</li>
      ))}
    </ul>
  );
}

/** A message for the whole form or page; role=alert so it is announced when it appears. */
export function ErrorNotice(props: { error: unknown }) {
  if (!props.error) return null;
  const e = props.error;
  const text = e instanceof ApiError ? e.message : e instanceof Error ? e.message : String(e);
  return (
    <div class="notice error-notice" role="alert">
      {text}
    </div>
  );
}

/**
 * A failed submit: the server's field errors (problem JSON `field`/`errors`) that name one of the
 * form's fields are shown under it and focused, and true is returned; otherwise false, for the
 * caller to show the failure as a whole.
 */
export function showFieldErrors(err: unknown, order: [field: string, elementId: string][], setErrors: (errors: Record<string, string>) => void): boolean {
  const fields = err instanceof ApiError ? err.fieldErrors : {};
  const mapped = Object.fromEntries(order.filter(([f]) => fields[f]).map(([f]) => [f, fields[f]]));
  if (!Object.keys(mapped).length) return false;
  setErrors(mapped);
  focusFirstError(order, mapped);
  return true;
}

/** Moves focus to the first control (in form order) whose field has an error, once the errors are rendered. */
export function focusFirstError(order: [field: string, elementId: string][], errors: Record<string, string | undefined>): void {
  const first = order.find(([field]) => errors[field]);
  if (first) requestAnimationFrame(() => document.getElementById(first[1])?.focus());
}

/**
 * A dialog's one request: `busy` while it runs (the submit button says so and is disabled), and
 * its failure for an ErrorNotice, unless `handled` (e.g. showFieldErrors) took care of it.
 * `setFailure` is for what fails outside the action (loading the form's choices, say).
 */
export function useAction() {
  const [busy, setBusy] = useState(false);
  const [failure, setFailure] = useState<unknown>(null);
  const run = async (work: () => Promise<void>, handled?: (err: unknown) => boolean): Promise<void> => {
    setBusy(true);
    setFailure(null);
    try {
      await work();
    } catch (err) {
      if (!handled?.(err)) setFailure(err);
    } finally {
      setBusy(false);
    }
  };
  return { busy, failure, setFailure, run };
}

/** Cancel and the dialog's action, in that order. Without `onAct` the action submits the dialog's form. */
export function DialogButtons(props: { onCancel: () => void; busy: boolean; label: string; busyLabel: string; danger?: boolean; focusCancel?: boolean; onAct?: () => void }) {
  return (
    <div class="buttons">
      <button type="button" class="secondary" onClick={props.onCancel} autoFocus={props.focusCancel}>
        Cancel
      </button>
      <button type={props.onAct ? 'button' : 'submit'} class={props.danger ? 'danger' : undefined} onClick={props.onAct} disabled={props.busy}>
        {props.busy ? props.busyLabel : props.label}
      </button>
    </div>
  );
}
