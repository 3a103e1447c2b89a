// The login page: posts the token; the head answers with an HttpOnly session cookie.
'use strict';

document.getElementById('login-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const error = document.getElementById('login-error');
  error.hidden = true;
  const response = await fetch('/login', {
    method: 'POST',
    credentials: 'same-origin',
    headers: {'Content-Type': 'application/json', 'X-Lumen-Request': '1'},
    body: JSON.stringify({token: document.getElementById('token').value.trim()}),
  });
  if (response.ok) {
    window.location.href = '/#/overview';
    return;
  }
  let message = 'Log in failed (HTTP ' + response.status + ')';
  try {
    message = (await response.json()).error || message;
  } catch (e) {
    // Keep the generic message.
  }
  error.textContent = message;
  error.hidden = false;
});
