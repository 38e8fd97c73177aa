"""Cases: review items grouped for detention, the rights holder's reply, the decision and disposal."""
