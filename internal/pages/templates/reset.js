(function () {
  'use strict';
  var form = document.getElementById('reset-form');
  var status = document.getElementById('status');
  var pw1 = document.getElementById('password');
  var pw2 = document.getElementById('password-again');
  var button = document.getElementById('submit');

  function show(message, kind) {
    status.textContent = message;
    status.className = kind || '';
  }

  // The token travels in the fragment, which browsers never send to a
  // server. Read it, then drop it from the address bar and history.
  var params = new URLSearchParams(window.location.hash.slice(1));
  var token = params.get('token') || '';
  if (window.location.hash) {
    history.replaceState(null, '', window.location.pathname + window.location.search);
  }
  if (!token) {
    form.hidden = true;
    show('This link is incomplete. Open the link from your email again, or request a new one.', 'error');
    return;
  }

  function bytes(s) { return new TextEncoder().encode(s).length; }

  form.addEventListener('submit', function (event) {
    event.preventDefault();
    if (bytes(pw1.value) < 8) {
      show('The password must be at least 8 characters long.', 'error');
      pw1.focus();
      return;
    }
    if (bytes(pw1.value) > 1024) {
      show('The password must be at most 1024 bytes long.', 'error');
      pw1.focus();
      return;
    }
    if (pw1.value !== pw2.value) {
      show('The two passwords are not the same.', 'error');
      pw2.focus();
      return;
    }
    button.disabled = true;
    show('Saving your new password…');
    fetch(form.dataset.endpoint, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ token: token, password: pw1.value }),
      credentials: 'omit',
      cache: 'no-store'
    }).then(function (res) {
      if (res.status === 204) {
        form.hidden = true;
        show('Your password has been changed. Every device signed in to your account has been signed out; sign in again with the new password.', 'ok');
        return;
      }
      return res.json().catch(function () { return {}; }).then(function (body) {
        button.disabled = false;
        if (body.error === 'invalid_grant') {
          form.hidden = true;
          show('This link has expired or has already been used. Request a new one.', 'error');
        } else if (res.status === 429) {
          var wait = res.headers.get('Retry-After');
          show('Too many attempts. Try again' + (wait ? ' in ' + wait + ' seconds.' : ' later.'), 'error');
        } else if (body.error === 'invalid_request' && body.error_description) {
          show(body.error_description, 'error');
        } else {
          show('Something went wrong. Try again in a moment.', 'error');
        }
      });
    }).catch(function () {
      button.disabled = false;
      show('The server could not be reached. Check your connection and try again.', 'error');
    });
  });
})();
