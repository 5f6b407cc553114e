DROP TABLE s3_objects;
