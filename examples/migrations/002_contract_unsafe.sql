-- Contract step written too early: every statement here breaks the running version.
ALTER TABLE users DROP COLUMN legacy_name;
ALTER TABLE users RENAME COLUMN fullname TO full_name;
ALTER TABLE orders
    ALTER COLUMN total TYPE numeric(12, 2),
    ADD COLUMN currency char(3) NOT NULL;
CREATE INDEX orders_created ON orders (created_at);
DROP TABLE old_sessions;
ALTER TABLE payments ADD CONSTRAINT payments_order_fk FOREIGN KEY (order_id) REFERENCES orders (id);
