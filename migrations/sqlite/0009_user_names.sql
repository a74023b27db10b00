-- What Airflow keeps of a user besides the username (`users create --firstname --lastname
-- --email`); each is NULL when not given. An email belongs to one user at most, compared
-- without case, so `users delete -e EMAIL` names one user, as in Airflow.
ALTER TABLE users ADD COLUMN first_name TEXT;
ALTER TABLE users ADD COLUMN last_name TEXT;
ALTER TABLE users ADD COLUMN email TEXT;
CREATE UNIQUE INDEX users_email ON users (lower(email));
