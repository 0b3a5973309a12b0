(function () {
  'use strict';
  var box = document.getElementById('verify');
  var status = document.getElementById('status');
  var again = document.getElementById('again');
  var button = document.getElementById('confirm');

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
    show('This link is incomplete. Open the link from your email again, or ask for a new one.', 'error');
    again.hidden = false;
    return;
  }

  // Nothing happens until the person presses the button: a mail
  // scanner that opens links, or a link someone else sent, confirms
  // nothing.
  show('Press the button to confirm this address. If you did not sign up or ask to change your address, close this page.');
  button.hidden = false;
  button.addEventListener('click', function () {
    button.disabled = true;
    show('Confirming your email address…');
    post();
  });

  function post() {
    fetch(box.dataset.endpoint, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ token: token }),
      credentials: 'omit',
      cache: 'no-store'
    }).then(function (res) {
      button.hidden = true;
      if (res.status === 204) {
        show('Your email address is confirmed. You can sign in now.', 'ok');
        return;
      }
      return res.json().catch(function () { return {}; }).then(function (body) {
        if (body.error === 'invalid_grant') {
          show('This link has expired or has already been used. If you confirmed your address already, you can sign in.', 'error');
          again.hidden = false;
        } else if (res.status === 429) {
          var wait = res.headers.get('Retry-After');
          show('Too many attempts. Open the link again' + (wait ? ' in ' + wait + ' seconds.' : ' later.'), 'error');
        } else {
          show('Something went wrong. Open the link again in a moment.', 'error');
        }
      });
    }).catch(function () {
      show('The server could not be reached. Check your connection and open the link again.', 'error');
    });
  }
})();
