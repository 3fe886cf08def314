// Progressive enhancement only: every page works without it.
'use strict';
document.addEventListener('click', (event) => {
  const button = event.target.closest('button[data-copy]');
  if (!button) return;
  const source = document.getElementById(button.dataset.copy);
  if (!source || !navigator.clipboard) return;
  navigator.clipboard.writeText(source.textContent.trim()).then(() => {
    const status = document.getElementById(`${button.dataset.copy}-status`);
    if (status) status.textContent = 'Copied.';
  }, () => {});
});
// A form marked so sends itself (ending the sign-in session after the console's own ended).
for (const form of document.querySelectorAll('form[data-autosubmit]')) form.submit();
// A delete button is enabled once the confirmation field holds the expected name.
for (const input of document.querySelectorAll('input[data-confirm]')) {
  const button = input.form && input.form.querySelector('button[type=submit]');
  if (!button) continue;
  const update = () => { button.disabled = input.value !== input.dataset.confirm; };
  input.addEventListener('input', update);
  update();
}
