-- The bookstore of `kck demo`, named as a Django app "store" would name it.
CREATE TABLE store_author (
  id   bigserial PRIMARY KEY,
  name text NOT NULL
);
CREATE TABLE store_book (
  id        bigserial PRIMARY KEY,
  author_id bigint NOT NULL REFERENCES store_author (id),
  title     text NOT NULL,
  published date
);
CREATE TABLE store_review (
  id      bigserial PRIMARY KEY,
  book_id bigint NOT NULL REFERENCES store_book (id) ON DELETE CASCADE,
  rating  integer NOT NULL CHECK (rating BETWEEN 1 AND 5),
  body    text NOT NULL DEFAULT ''
);
-- The indexes Django creates for a ForeignKey: each product reads one
-- author's books and their reviews.
CREATE INDEX store_book_author_id_idx ON store_book (author_id);
CREATE INDEX store_review_book_id_idx ON store_review (book_id);
INSERT INTO store_author (name) VALUES ('Ursula K. Le Guin'), ('Italo Calvino'), ('Octavia E. Butler');
INSERT INTO store_book (author_id, title, published) VALUES
  (1, 'A Wizard of Earthsea', '1968-11-01'), (1, 'The Left Hand of Darkness', '1969-03-01'),
  (1, 'The Dispossessed', '1974-05-01'), (2, 'Invisible Cities', '1972-01-01'),
  (2, 'If on a winter''s night a traveler', '1979-01-01'), (3, 'Kindred', '1979-06-01'),
  (3, 'Parable of the Sower', '1993-10-01');
INSERT INTO store_review (book_id, rating, body) VALUES
  (1, 5, 'a classic'), (2, 4, 'cold and bright'), (3, 5, 'ambiguous utopia'), (4, 5, 'dreamlike'),
  (5, 3, 'playful'), (6, 5, 'unforgettable'), (7, 4, 'prescient');
